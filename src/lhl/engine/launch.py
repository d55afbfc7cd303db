"""``lhl run --nproc N``: start ``torchrun --standalone --nproc_per_node=N -m lhl run ...`` and
make it behave like one ``lhl run`` for the person at the terminal.

- torchrun and its workers run in their own session; a SIGINT/SIGTERM to ``lhl`` is passed on to
  torchrun, which forwards it to every worker, so they all stop cleanly between two steps (a
  second signal kills them).
- torchrun's own log lines are dropped, and so is its failure report once a worker has printed
  its one-line ``lhl: error:``; the exit status is that of process 0 (written to the file named
  by ``LHL_EXIT_STATUS_FILE``), or torchrun's when process 0 wrote none.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

EXIT_STATUS_ENV = "LHL_EXIT_STATUS_FILE"
#: torch's log lines (torchrun's and the C++ ones of the workers), e.g.
#: "W1202 01:02:03.456000 123 torch/distributed/run.py:792] ..." or "[rank0]:[W1202 01:07:12.45 reducer.cpp:1529] ..."
_TORCHRUN_LOG = re.compile(r"^(\[rank\d+\]:)?\[?[DIWE]\d{4} \d\d:\d\d:\d\d")


def record_exit_status(code: int) -> None:
    """Called by a worker's CLI on the way out: process 0 leaves its exit status for the launcher."""
    path = os.environ.get(EXIT_STATUS_ENV)
    if path and os.environ.get("RANK", "0") == "0":
        try:
            Path(path).write_text(str(code))
        except OSError:
            pass


def launch(argv: list[str], nproc: int) -> int:
    """Run ``lhl <argv>`` in ``nproc`` processes under torchrun; return process 0's exit status."""
    with tempfile.TemporaryDirectory(prefix="lhl-launch-") as scratch:
        status_file = Path(scratch) / "status"
        env = dict(os.environ)
        env[EXIT_STATUS_ENV] = str(status_file)
        # One core per process unless the user chose (torchrun would set 1 and print a warning).
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "lhl", *argv]
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, bufsize=1,
                                   start_new_session=True)
        signals = {"count": 0}

        def forward(signum, frame):
            signals["count"] += 1
            try:
                if signals["count"] == 1:
                    process.send_signal(signum)  # torchrun passes the same signal on to every worker
                else:
                    os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            worker_failed = False
            for line in process.stderr:
                if _TORCHRUN_LOG.match(line) or worker_failed:
                    continue
                sys.stderr.write(line)
                if line.startswith("lhl: error:"):
                    worker_failed = True  # what torchrun prints next is its own report of that failure
            code = process.wait()
        finally:
            for s, old in previous.items():
                signal.signal(s, old)
        if status_file.exists():
            text = status_file.read_text().strip()
            if text.lstrip("-").isdigit():
                return int(text)
        return code
