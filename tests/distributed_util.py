"""Run a test's function in N CPU processes of one ``gloo`` process group, as torchrun would.

Tests get it through the ``run_distributed`` fixture (tests/conftest.py)::

    def worker(n):                            # module level in the test file
        from lhl.engine import distributed
        return {"rank": distributed.rank(), "x": torch.ones(n)}

    def test_something(run_distributed):
        results = run_distributed(worker, 3)   # world=2 by default
        assert results[1]["rank"] == 1

``run_distributed(fn, *args, world=2, init_group=True, start=None, timeout=120.0, env=None) -> list``
calls ``fn(*args)`` in ``world`` processes and returns the return values in rank order. Each
process has torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR=127.0.0.1``, ``MASTER_PORT`` = a free port) plus ``env``, one
torch thread, and with ``init_group`` a ``gloo`` group (``file://`` rendezvous in a temporary
folder) joined before the call and left after; with ``init_group=False`` ``fn`` joins itself
(``lhl.engine.distributed.init_from_environment("cpu")``, or a whole ``Trainer`` run).

``start``: ``"fork"`` (the default on Linux) forks the test process — no start-up cost, ``fn``
may be any callable; ``"subprocess"`` (the default elsewhere) starts fresh interpreters running
this file, as torchrun does (each pays torch's import, seconds): ``fn`` must then be defined at
module level of a ``.py`` file, which the children load by path (pytest's importlib mode makes
test modules unimportable by name), and ``args`` travel with ``torch.save``. Return values travel
with ``torch.save`` (plain tensors, numbers, strings, lists, dicts). A process that fails or
hangs stops all of them and raises ``AssertionError`` with every process's output / traceback.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_distributed(fn: Callable[..., Any], *args: Any, world: int = 2, init_group: bool = True,
                    start: str | None = None, timeout: float = 120.0, env: dict[str, str] | None = None) -> list[Any]:
    import torch

    start = start or ("fork" if sys.platform == "linux" else "subprocess")
    with tempfile.TemporaryDirectory(prefix="lhl-ddp-") as folder:
        folder = Path(folder)
        common = {"WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
                  "MASTER_PORT": str(free_port()), **(env or {})}
        job = {"args": list(args), "init_group": init_group, "store": str(folder / "store")}
        processes = []
        if start == "fork":
            context = multiprocessing.get_context("fork")
            for r in range(world):
                process = context.Process(target=_forked, args=(folder, r, fn, {**common, "RANK": str(r),
                                                                                 "LOCAL_RANK": str(r)}, job))
                process.start()
                processes.append((lambda p=process: p.exitcode, lambda p=process: (p.kill(), p.join())))
        elif start == "subprocess":
            source, name = Path(fn.__code__.co_filename).resolve(), fn.__qualname__
            if "<locals>" in name or not source.is_file():
                raise ValueError(f"run_distributed: {name!r} must be defined at module level of a .py file")
            torch.save({**job, "file": str(source), "name": name}, folder / "job.pt")
            path = os.pathsep.join(p for p in [str(SRC), os.environ.get("PYTHONPATH", "")] if p)
            for r in range(world):
                with open(folder / f"output{r}.txt", "w") as log:
                    process = subprocess.Popen([sys.executable, __file__, str(folder), str(r)], stdout=log,
                                               stderr=subprocess.STDOUT, env={**os.environ, **common, "PYTHONPATH": path,
                                                                              "RANK": str(r), "LOCAL_RANK": str(r)})
                processes.append((process.poll, lambda p=process: (p.kill(), p.wait())))
        else:
            raise ValueError(f"run_distributed: start must be 'fork' or 'subprocess', not {start!r}")
        codes = _wait(processes, timeout)
        if any(code != 0 for code in codes):
            logs = [f"--- rank {r} (exit code {code}) ---\n" + _read(folder / f"output{r}.txt")
                    for r, code in enumerate(codes)]
            raise AssertionError("run_distributed: a process failed or timed out\n" + "\n".join(logs))
        return [torch.load(folder / f"result{r}.pt", weights_only=False) for r in range(world)]


def _wait(processes: list[tuple[Callable[[], int | None], Callable[[], None]]], timeout: float) -> list[int | None]:
    """Exit codes (None: killed at the timeout). A failed process leaves the others waiting in a
    collective, so the first failure stops them all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        codes = [poll() for poll, _ in processes]
        if all(code is not None for code in codes) or any(code not in (None, 0) for code in codes):
            break
        time.sleep(0.02)
    for poll, kill in processes:
        if poll() is None:
            kill()  # and reap
    return [poll() for poll, _ in processes]


def _read(path: Path) -> str:
    return path.read_text(errors="replace")[-6000:] if path.is_file() else "(no output)"


def _run(folder: Path, rank: int, fn: Callable[..., Any], job: dict[str, Any]) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    if job["init_group"]:
        dist.init_process_group("gloo", init_method=f"file://{job['store']}", rank=rank,
                                world_size=int(os.environ["WORLD_SIZE"]))
    try:
        result = fn(*job["args"])
    finally:
        if job["init_group"] and dist.is_initialized():
            dist.destroy_process_group()
    torch.save(result, folder / f"result{rank}.pt")


def _forked(folder: Path, rank: int, fn: Callable[..., Any], environment: dict[str, str], job: dict[str, Any]) -> None:
    os.environ.update(environment)
    try:
        _run(folder, rank, fn, job)
    except BaseException:
        (folder / f"output{rank}.txt").write_text(traceback.format_exc())
        os._exit(1)


def _child(folder: Path, rank: int) -> None:
    import torch

    job = torch.load(folder / "job.pt", weights_only=False)
    spec = importlib.util.spec_from_file_location("_lhl_distributed_target", job["file"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    fn = module
    for part in job["name"].split("."):
        fn = getattr(fn, part)
    _run(folder, rank, fn, job)


if __name__ == "__main__":
    _child(Path(sys.argv[1]), int(sys.argv[2]))
