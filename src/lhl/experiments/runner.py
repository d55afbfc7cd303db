"""``lhl bench``: run an experiment's run list into one experiment directory, resumably.

Layout of the experiment directory ``DIR``::

    DIR/experiment.yaml                            the resolved experiment (a valid experiment file)
    DIR/runs/<order-id>/<label>-s<seed>/           one lhl run directory per run, plus
        bench-status.json                          running / done / failed (+ error), host, pid, times,
                                                   the run's label, seed, order (and arm)
    DIR/runs/<arm>/<order-id>/<label>-s<seed>/     the same, for an experiment with ``arms``
        bench.log                                  the output of the worker process (--jobs > 1)

Every run's configuration is validated before anything starts, and a run directory that holds a
run with another configuration is refused then. A complete run is skipped; an incomplete one is
resumed (``lhl run --resume``); a failing run (any :class:`~lhl.errors.LhlError`, e.g. a NaN) is
recorded with its error and the others go on; a run whose directory lock another process holds is
left to it ("running elsewhere"). So a killed bench restarts where it stopped, and shards
(``--shard I/N``) of one experiment can run on machines that share ``DIR``.

``jobs > 1`` runs that many worker processes (``python -m lhl run ...``), each with
``max(1, cores // jobs)`` torch threads, or — when the runs' device is ``cuda`` and several GPUs
are visible — one GPU each (``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import gc
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import lhl
from lhl.config import config_differences
from lhl.engine.checkpoint import write_text
from lhl.engine.rundir import RunDirectory
from lhl.errors import ConfigError, Interrupted, LhlError, ReportError, RunDirectoryError
from lhl.experiments.plan import PlannedRun, shard_slice
from lhl.experiments.schema import Experiment
from lhl.experiments.status import (ARM_FIELD, LOG_FILE, STATUS_FILE, is_complete, lock_held, now, read_status,
                                    run_state, write_status)

__all__ = ["BenchResult", "run_bench", "check_run_directories", "prepare_directory", "format_run_list",
           "format_status", "summary", "comparison", "runs_glob", "available_cores", "IN_USE", "STATUS_FILE",
           "read_status"]

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
#: The run directory lock's refusal (lhl.engine.rundir): the run is being written by another process.
IN_USE = "in use by another lhl process"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class Outcome:
    run: PlannedRun
    state: str  # "done", "failed", "elsewhere", "interrupted", "skipped"
    error: str = ""
    seconds: float = 0.0
    exit_code: int = 0


@dataclass
class BenchResult:
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: int | None = None  # the signal that stopped the bench

    def of(self, state: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.state == state]

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return SIGNAL_EXIT[self.interrupted]
        return 1 if self.of("failed") else 0


# ----------------------------------------------------------------------------- before starting
def check_run_directories(runs: list[PlannedRun], out: Path) -> None:
    """Refuse, before anything starts, a run directory that holds a run of another configuration
    (e.g. the experiment changed since it was run into ``out``)."""
    for run in runs:
        run_dir = out / run.rel_dir
        if not (run_dir / "config.yaml").is_file():
            continue
        saved = RunDirectory(run_dir).read_config()
        differences = config_differences(saved, run.config.to_dict())
        if differences:
            raise RunDirectoryError(
                f"{str(run_dir)!r} holds a run whose configuration differs from the experiment's run "
                f"{run.describe()}: {'; '.join(differences[:3])}{' ...' if len(differences) > 3 else ''}; "
                "remove that directory or choose another --out")


def prepare_directory(experiment: Experiment, out: Path, source: str) -> None:
    """Create ``out`` and write ``out/experiment.yaml`` (atomically; shards write the same text)."""
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {str(out)!r} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirectoryError(f"--out {str(out)!r} cannot be created: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunDirectoryError(f"--out {str(out)!r} is not writable")
    header = (f"# The resolved experiment that lhl bench runs into this directory (from {source}).\n"
              f"# Continue or extend it with: lhl bench {shlex.quote(str(out / 'experiment.yaml'))} "
              f"--out {shlex.quote(str(out))}\n")
    write_text(out / "experiment.yaml", header + experiment.to_yaml())


# ----------------------------------------------------------------------------- listing and status
def format_run_list(runs: list[PlannedRun], out: Path | None) -> str:
    """One line per run: index, (arm,) label, order, seed, run directory."""
    arms = any(run.arm is not None for run in runs)
    rows = [("#", *(("arm",) if arms else ()), "label", "order", "seed", "run directory")]
    for run in runs:
        where = str(out / run.rel_dir) if out is not None else run.rel_dir
        rows.append((str(run.index), *((run.arm or "",) if arms else ()), run.label, run.order_id, str(run.seed),
                     where))
    n = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(n)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:n], widths)) + "  " + r[n] for r in rows)


def format_status(runs: list[PlannedRun], out: Path) -> tuple[str, dict[str, int]]:
    """Counts of done / failed / running / pending, then the failed runs with their errors and the
    running and interrupted ones."""
    states = [(run, run_state(out / run.rel_dir, _phases(run))) for run in runs]
    counts = {name: sum(1 for _, s in states if s.state == name) for name in ("done", "failed", "running", "pending")}
    lines = [f"{out}: {len(runs)} runs: " + ", ".join(f"{n} {name}" for name, n in counts.items())]
    for name in ("failed", "running", "pending"):
        listed = [(r, s) for r, s in states if s.state == name]
        if not listed:
            continue
        lines.append(f"{name}:")
        for run, state in listed:
            detail = f": {state.detail}" if state.detail else ""
            lines.append(f"  [{run.index}] {run.describe()} ({run.rel_dir}){detail}")
    return "\n".join(lines), counts


def _phases(run: PlannedRun) -> int | None:
    """The run's number of phases (1 for a joint method), None when its method is not known here
    (a plugin's, when the plan was not validated)."""
    from lhl.registry import METHODS, load_builtins

    load_builtins()
    try:
        return 1 if METHODS.get(run.method).joint else len(run.order)
    except LhlError:
        return None


# ----------------------------------------------------------------------------- running
def run_bench(runs: list[PlannedRun], out: Path, jobs: int = 1, shard: tuple[int, int] | None = None,
              echo: Callable[[str], None] = print) -> BenchResult:
    """Run the runs of ``shard`` (all when None) that are not complete, ``jobs`` at a time."""
    if jobs < 1:
        raise ConfigError(f"--jobs: invalid value {jobs}; expected an integer >= 1")
    selected = shard_slice(runs, shard)
    result = BenchResult()
    todo: list[PlannedRun] = []
    for run in selected:
        run_dir = out / run.rel_dir
        if is_complete(run_dir):
            result.outcomes.append(Outcome(run, "skipped"))
        elif lock_held(run_dir):
            result.outcomes.append(Outcome(run, "elsewhere", "its run directory is locked by another process"))
        else:
            todo.append(run)
    where = f" (shard {shard[0]}/{shard[1]}: {len(selected)} runs)" if shard else ""
    echo(f"lhl bench: {len(runs)} runs in {out}{where}: {len(result.of('skipped'))} complete, "
         f"{len(result.of('elsewhere'))} running elsewhere, {len(todo)} to run"
         + (f", {jobs} at a time" if jobs > 1 and len(todo) > 1 else ""))
    total = len(todo)
    if jobs == 1 or total <= 1:
        _run_in_process(todo, out, result, echo, total)
    else:
        _run_workers(todo, out, jobs, result, echo, total)
    return result


def _report(echo, position: int, total: int, outcome: Outcome) -> None:
    run = outcome.run
    text = {"done": f"done ({outcome.seconds:.1f} s)", "failed": f"FAILED: {outcome.error}",
            "elsewhere": "running elsewhere, left to that process",
            "interrupted": "interrupted (resumed by the next lhl bench)"}[outcome.state]
    arm = f" [{run.arm}]" if run.arm is not None else ""
    echo(f"[{position}/{total}] {run.label} seed {run.seed} {run.order_id}{arm}: {text}")


def _start(run: PlannedRun, out: Path) -> Path | None:
    """Mark ``run`` running; None when it is complete or another process runs it meanwhile."""
    run_dir = out / run.rel_dir
    if is_complete(run_dir) or lock_held(run_dir):
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    write_status(run_dir, "running", started=now(), **_identity(run))
    return run_dir


def _identity(run: PlannedRun) -> dict:
    """What ``bench-status.json`` records of the run; ``arm`` is what ``lhl report`` and ``lhl
    compare`` read to keep the arms of an experiment apart (lhl.report.compare)."""
    fields = {"label": run.label, "seed": run.seed, "order": run.order}
    if run.arm is not None:
        fields[ARM_FIELD] = run.arm
    return fields


def _finish(run_dir: Path, outcome: Outcome) -> None:
    if outcome.state == "elsewhere":
        return  # the other process records its own outcome
    fields = {**_identity(outcome.run), "seconds": round(outcome.seconds, 1), "finished": now()}
    if outcome.state == "failed":
        fields.update(error=outcome.error, exit_code=outcome.exit_code)
    write_status(run_dir, outcome.state, **fields)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _run_in_process(todo: list[PlannedRun], out: Path, result: BenchResult, echo, total: int) -> None:
    from lhl.engine.trainer import Trainer

    for position, run in enumerate(todo, start=1):
        run_dir = _start(run, out)
        if run_dir is None:
            outcome = Outcome(run, "skipped" if is_complete(out / run.rel_dir) else "elsewhere")
            result.outcomes.append(outcome)
            continue
        start = time.monotonic()
        resume = (run_dir / "config.yaml").is_file()
        try:
            Trainer(run.config, run_dir, quiet=True, resume=resume).run()
            outcome = _completed(run, run_dir, time.monotonic() - start)
        except Interrupted as exc:
            outcome = Outcome(run, "interrupted", _one_line(exc), time.monotonic() - start, exc.exit_code)
            _finish(run_dir, outcome)
            result.outcomes.append(outcome)
            _report(echo, position, total, outcome)
            result.interrupted = signal.SIGINT if exc.exit_code == 130 else signal.SIGTERM
            return
        except KeyboardInterrupt:  # a second Ctrl-C: stopped at once
            _finish(run_dir, Outcome(run, "interrupted", "", time.monotonic() - start))
            raise
        except LhlError as exc:
            state = "elsewhere" if isinstance(exc, RunDirectoryError) and IN_USE in str(exc) else "failed"
            outcome = Outcome(run, state, _one_line(exc), time.monotonic() - start, exc.exit_code)
        except Exception as exc:  # a bug: recorded (traceback in bench.log), the other runs go on
            with open(run_dir / LOG_FILE, "a", encoding="utf-8") as log:
                log.write(f"--- {now()} internal error\n{traceback.format_exc()}")
            outcome = Outcome(run, "failed", f"internal error {type(exc).__name__}: {_one_line(exc)} (traceback in "
                              f"{run_dir / LOG_FILE})", time.monotonic() - start, 1)
        finally:
            gc.collect()
        _finish(run_dir, outcome)
        result.outcomes.append(outcome)
        _report(echo, position, total, outcome)


def _completed(run: PlannedRun, run_dir: Path, seconds: float) -> Outcome:
    if is_complete(run_dir):
        return Outcome(run, "done", seconds=seconds)
    return Outcome(run, "failed", "the run ended without a complete performance.json and summary.md", seconds, 1)


# ----------------------------------------------------------------------------- worker processes
def _child_env(slot: int, jobs: int, gpus: list[str] | None) -> dict[str, str]:
    """A worker's environment: ``max(1, cores // jobs)`` threads, this lhl importable, and GPU
    ``gpus[slot % len(gpus)]`` alone visible when ``gpus`` is given."""
    env = dict(os.environ)
    threads = str(max(1, available_cores() // jobs))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    package_parent = str(Path(lhl.__file__).resolve().parent.parent)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_parent not in paths:  # the workers import this lhl, wherever it was imported from
        env["PYTHONPATH"] = os.pathsep.join([package_parent, *paths])
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


def _gpus(runs: list[PlannedRun], jobs: int) -> list[str] | None:
    """The GPU ids to spread workers over: when every run's device is ``cuda`` (no index) and
    several GPUs are visible; None otherwise (workers then share what they see)."""
    if jobs < 2 or not runs or any(r.config is None or r.config.device != "cuda" for r in runs):
        return None
    import torch

    count = torch.cuda.device_count()
    if count < 2:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(count)]
    return ids[:count]


@dataclass
class _Worker:
    run: PlannedRun
    run_dir: Path
    process: subprocess.Popen
    slot: int
    log_offset: int
    start: float


def _run_workers(todo: list[PlannedRun], out: Path, jobs: int, result: BenchResult, echo, total: int) -> None:
    queue = deque(todo)
    free = list(range(jobs))
    running: list[_Worker] = []
    gpus = _gpus(todo, jobs)
    if gpus:
        echo(f"lhl bench: one GPU per worker, over CUDA_VISIBLE_DEVICES {','.join(gpus)}")
    position = 0
    with _forwarded_signals(running) as stop:
        while queue or running:
            while queue and free and stop.signum is None:
                run = queue.popleft()
                run_dir = _start(run, out)
                if run_dir is None:
                    result.outcomes.append(Outcome(run, "skipped" if is_complete(out / run.rel_dir) else "elsewhere"))
                    continue
                slot = free.pop(0)
                log_path = run_dir / LOG_FILE
                command = [sys.executable, "-m", "lhl", "run", *run.run_args(), "--out", str(run_dir), "--quiet"]
                if (run_dir / "config.yaml").is_file():
                    command.append("--resume")
                with open(log_path, "a", encoding="utf-8") as log:
                    log.write(f"--- {now()} {shlex.join(command)}\n")
                    offset = log.tell()
                log = open(log_path, "a", encoding="utf-8")
                try:
                    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                               env=_child_env(slot, jobs, gpus), start_new_session=True)
                finally:
                    log.close()
                running.append(_Worker(run, run_dir, process, slot, offset, time.monotonic()))
            if not running:
                break
            time.sleep(0.05)
            for worker in [w for w in running if w.process.poll() is not None]:
                running.remove(worker)
                free.append(worker.slot)
                outcome = _worker_outcome(worker)
                _finish(worker.run_dir, outcome)
                result.outcomes.append(outcome)
                position += 1
                _report(echo, position, total, outcome)
        if stop.signum is not None:
            result.interrupted = stop.signum


def _worker_outcome(worker: _Worker) -> Outcome:
    code = worker.process.returncode
    seconds = time.monotonic() - worker.start
    if code == 0:
        return _completed(worker.run, worker.run_dir, seconds)
    error = _error_line(worker.run_dir / LOG_FILE, worker.log_offset)
    if code in (130, 143):
        return Outcome(worker.run, "interrupted", error, seconds, code)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return Outcome(worker.run, "failed", f"the worker process was killed by {name}", seconds, 1)
    if IN_USE in error:
        return Outcome(worker.run, "elsewhere", error, seconds, code)
    return Outcome(worker.run, "failed", error or f"lhl run exited with status {code}", seconds, code)


def _error_line(log: Path, offset: int) -> str:
    """The worker's ``lhl: error:`` line (or its last line: a traceback's exception)."""
    try:
        with open(log, encoding="utf-8", errors="replace") as handle:
            handle.seek(offset)
            lines = [line.strip() for line in handle.read().splitlines() if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if line.startswith("lhl: error: "):
            return line[len("lhl: error: "):]
    return lines[-1] if lines else ""


class _Stop:
    signum: int | None = None


@contextmanager
def _forwarded_signals(running: list[_Worker]) -> Iterator[_Stop]:
    """SIGINT/SIGTERM stop the bench: no new run starts and the signal is passed on to the workers
    (each in its own session, so a terminal's Ctrl-C reaches them once, through here), which stop
    at a safe point; a second signal is passed on too (the workers then stop at once)."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.signum is None:
            stop.signum = signum
        for worker in running:
            if worker.process.poll() is None:
                try:
                    os.kill(worker.process.pid, signum)
                except ProcessLookupError:
                    pass

    previous = {s: signal.signal(s, handler) for s in SIGNAL_EXIT}
    try:
        yield stop
    except BaseException:
        for worker in running:  # an error in the bench itself: do not leave workers behind
            if worker.process.poll() is None:
                worker.process.terminate()
        raise
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


# ----------------------------------------------------------------------------- the summary
def summary(result: BenchResult, runs: list[PlannedRun], out: Path) -> str:
    done = result.of("done")
    failed = result.of("failed")
    lines = [f"lhl bench: {len(done)} run(s) finished now, {len(result.of('skipped'))} were complete, "
             f"{len(failed)} failed, {len(result.of('elsewhere'))} running elsewhere, "
             f"{len(result.of('interrupted'))} interrupted"]
    for outcome in failed:
        lines.append(f"  FAILED [{outcome.run.index}] {outcome.run.describe()} ({out / outcome.run.rel_dir}): "
                     f"{outcome.error}")
    remaining = [r for r in runs if not is_complete(out / r.rel_dir)]
    if remaining:
        lines.append(f"lhl bench: {len(runs) - len(remaining)} of {len(runs)} runs of the experiment are complete; "
                     f"lhl bench --status {shlex.quote(str(out))} shows the others; rerun the same command to "
                     "retry failed runs and resume interrupted ones")
    return "\n".join(lines)


def comparison(runs: list[PlannedRun], out: Path, baseline: str) -> str | None:
    """``lhl compare`` over the experiment's runs when every one is complete (else None)."""
    from lhl.report.compare import comparison_table, load_runs

    if not all(is_complete(out / r.rel_dir) for r in runs):
        return None
    try:
        return comparison_table(load_runs([out / r.rel_dir for r in runs]), baseline)
    except ReportError as exc:
        return f"lhl: note: lhl compare {shlex.quote(str(out))}/{runs_glob(runs)} fails: {_one_line(exc)}"


def runs_glob(runs: list[PlannedRun]) -> str:
    """``runs/*/*`` (``runs/*/*/*`` with arms): the run directories of an experiment, for a shell."""
    return "runs/*/*/*" if any(r.arm is not None for r in runs) else "runs/*/*"

