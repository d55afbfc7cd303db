"""Run-directory I/O of a training run: the configuration check on ``--resume``, provenance,
phase checkpoints, ``performance.json`` and ``summary.md`` (README, "The run directory").

Only the main process writes (:func:`lhl.engine.distributed.is_main`); every process reads the
checkpoint it resumes from. Nothing is written to an existing run before every check has passed.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Any

import yaml

from lhl.config import config_differences
from lhl.config.schema import RunConfig
from lhl.data.base import Benchmark
from lhl.engine import distributed
from lhl.engine.checkpoint import write_json, write_text
from lhl.engine.hooks import Method, RunContext
from lhl.engine.provenance import provenance
from lhl.engine.rundir import RunDirectory
from lhl.errors import CheckpointError, RunDirectoryError
from lhl.report.tables import summary_markdown


class RunRecord:
    """What a run reads from and writes to its directory (writes on the main process only)."""

    def __init__(self, config: RunConfig, directory: RunDirectory, benchmark: Benchmark, order: list[str],
                 device: Any) -> None:
        self.config, self.directory, self.benchmark = config, directory, benchmark
        self.order, self.device = order, device
        self.path = directory.path
        self.writes = distributed.is_main()

    # ------------------------------------------------------------------ start or resume
    def prepare(self, weights_hash: str | None, resume: bool) -> tuple[int, int, dict[str, Any]]:
        """Check (or create) the run directory; return (last completed phase, attempt, provenance)."""
        current = self.config.to_dict()
        fingerprint = self.benchmark.fingerprint(self.order)
        record = provenance(self.config, self.device, weights_hash, fingerprint)
        record["processes"] = distributed.world_size()
        if not resume:
            if self.directory.holds_run():
                raise RunDirectoryError(f"{str(self.path)!r} already holds a run; pass --resume to continue "
                                        "it or choose another --out")
            write_text(self.path / "config.yaml", yaml.safe_dump(current, sort_keys=False))
            record["resumes"] = []
            return 0, 1, record
        saved = self.directory.read_config()
        if saved.get("tasks") is None:  # runs written before config.yaml recorded the order
            saved["tasks"] = current["tasks"]
        differences = config_differences(saved, current)
        if differences:
            raise RunDirectoryError(f"--resume: the configuration differs from the run in {str(self.path)!r}: "
                                    + "; ".join(differences))
        performance = self.directory.read_performance()
        old = self.directory.read_json("provenance.json", {})
        recorded = old.get("dataset_fingerprint")
        if recorded is not None and (" root=" in recorded or recorded.startswith("synthetic seed=")):
            recorded = None  # written by lhl < 0.2 (names and sizes only): not comparable, not checked
        if recorded not in (None, fingerprint):
            raise RunDirectoryError(
                f"--resume: the data differs from the run's: provenance.json records dataset fingerprint "
                f"{recorded!r}, data.root now gives {fingerprint!r}")
        if old.get("weights_sha256") != weights_hash and "weights_sha256" in old:
            raise RunDirectoryError(f"--resume: model.weights now names a file with SHA-256 {weights_hash}, the run "
                                    f"was made with {old['weights_sha256']}")
        processes = old.get("processes", 1)
        if processes != distributed.world_size():
            raise RunDirectoryError(f"--resume: the run was made with {processes} process(es) and this command runs "
                                    f"{distributed.world_size()}; resume with --nproc {processes}")
        done = self.directory.last_completed_phase(performance)
        if done:  # verify before anything is appended
            self.directory.load_checkpoint(done, self.config.method["name"])
        resumes = list(old.get("resumes", []))
        attempt = len(resumes) + 2
        resumes.append({"attempt": attempt, "time": _now(), "after_phase": done, "command": sys.argv,
                        "device": record["device"], "lhl_version": record["lhl_version"],
                        "git_commit": record["git_commit"]})
        record = {**record, **{k: v for k, v in old.items() if k not in ("resumes",)}, "resumes": resumes}
        return done, attempt, record

    def write_provenance(self, record: dict[str, Any]) -> None:
        if self.writes:
            write_json(self.path / "provenance.json", record)

    # ------------------------------------------------------------------ checkpoints
    def restore(self, ctx: RunContext, method: Method, done: int, out_channels: dict[str, int]) -> None:
        """Load phase ``done``'s checkpoint into the model and the method (every process)."""
        path = self.path / "checkpoints" / f"phase-{done}.pt"
        state = self.directory.load_checkpoint(done, self.config.method["name"])
        try:
            for task in state["tasks"]:
                ctx.model.add_task(task, out_channels[task])
            ctx.model.load_state_dict(state["model"])
            ctx.phase = done
            method.load_state_dict(state["method"], ctx)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CheckpointError(f"checkpoint {str(path)!r} does not match this run's model or method "
                                  f"{self.config.method['name']!r}: {reason}") from None

    def save_phase(self, ctx: RunContext, method: Method, phase: int) -> None:
        state = {"phase": phase, "tasks": ctx.model.tasks, "method_name": self.config.method["name"],
                 "model": ctx.model.state_dict(), "method": method.state_dict()}
        if self.writes:
            self.directory.save_checkpoint(phase, state, self.config.method["name"],
                                           self.config.train.keep_checkpoints)

    # ------------------------------------------------------------------ results
    def read_performance(self) -> dict[str, Any]:
        return self.directory.read_performance()

    def write_performance(self, performance: dict[str, Any]) -> None:
        if self.writes:
            write_json(self.path / "performance.json", performance)

    def write_summary(self, performance: dict[str, Any]) -> None:
        if self.writes:
            write_text(self.path / "summary.md", summary_markdown(performance, self.config))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
