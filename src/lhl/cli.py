"""Command-line interface: ``lhl run``, ``lhl compare``, ``lhl list``, ``lhl data preview``, ``lhl data check``.

A user's mistake or an environment fault (:class:`~lhl.errors.LhlError`, a file-system error)
prints one line, ``lhl: error: …``, and exits non-zero (2 for usage and configuration errors, 130/143
after SIGINT/SIGTERM); ``--debug`` or ``LHL_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
import traceback
from pathlib import Path

from lhl.config import ConfigError, load_config, preset_names
from lhl.config.schema import config_keys
from lhl.errors import LhlError
from lhl.registry import BENCHMARKS, ENCODERS, METHODS, TASKS, load_builtins

RUN_HELP = """Train one method over a benchmark's task sequence and write a run directory:
config.yaml (resolved), events.jsonl, performance.json, checkpoints/phase-<t>.pt, summary.md,
provenance.json. Without --config/--preset the synthetic-nyu-demo preset runs."""

SET_HELP = ("override a config key with a dotted name and a YAML value, e.g. --set train.epochs=2 "
            "--set data.resolution=[64,64] --set method.alpha=3 --set device=cuda (repeatable). Keys: "
            + ", ".join(config_keys()))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lhl", description="Lifelong heterogeneous learning on dense prediction.")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (also: environment variable LHL_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train a method over a task sequence", description=RUN_HELP)
    source = run.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="FILE", help="YAML config file (may start with 'base: <preset>')")
    source.add_argument("--preset", metavar="NAME", help=f"built-in configuration: {', '.join(preset_names())}")
    run.add_argument("--method", metavar="NAME",
                     help="method name (see 'lhl list methods'); replaces the config's method section (options "
                          "it set for another method are dropped, with a note); set options with --set method.KEY=V")
    run.add_argument("--out", metavar="DIR", help="run directory (default: runs/<preset>-<method>-s<seed>-<time>)")
    run.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides", help=SET_HELP)
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last completed phase (the config must match)")
    run.add_argument("--quiet", action="store_true", help="no progress bars or per-phase output")

    compare = sub.add_parser(
        "compare", help="tables of final metrics, Δ and mean rank across finished runs",
        description="Compare finished runs (any directory names; each run's identity comes from its config.yaml): "
                    "one table per benchmark and task order, one row per configuration (seeds pooled), final "
                    "metrics (mean over seeds), Δ over the baseline run of the same seed (eq. 11, mean ± std) and "
                    "mean rank. Undefined relative changes (a zero baseline value) show n/a with a note.")
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run directories")
    compare.add_argument("--baseline", default="vanilla", metavar="METHOD|LABEL",
                         help="method name or row label Δ is measured against (default: vanilla)")

    lst = sub.add_parser("list", help="print registered names",
                         description="Print what is registered; 'tasks' also lists which tasks each benchmark offers.")
    lst.add_argument("what", choices=["methods", "benchmarks", "tasks", "encoders", "presets"])

    data = sub.add_parser("data", help="dataset utilities", description="Dataset utilities.")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    preview = data_sub.add_parser("preview", help="render synthetic samples with every label to a PNG grid",
                                  description="Render synthetic samples (image and all ten labels, colour-mapped).")
    preview.add_argument("--out", default="synthetic-preview.png", help="PNG file to write")
    preview.add_argument("--seed", type=int, default=0, help="benchmark seed")
    preview.add_argument("--split", default="train", choices=["train", "test"], help="split to render")
    preview.add_argument("--count", type=int, default=4, help="number of samples (rows)")
    preview.add_argument("--resolution", type=int, nargs=2, default=[64, 64], metavar=("H", "W"),
                         help="image size")
    check = data_sub.add_parser(
        "check", help="scan a dataset directory and report its contents and problems",
        description="Scan a dataset directory: counts per split and task, shapes, dtypes, value ranges, "
                    "invalid-pixel fractions, and every problem found with its path. Exit status 1 when "
                    "problems are found.")
    check.add_argument("root", metavar="ROOT", help="dataset directory (what data.root would be)")
    check.add_argument("--benchmark", required=True, metavar="NAME", help="nyuv2, cityscapes or taskonomy")
    check.add_argument("--limit", type=int, metavar="N", help="check at most N images per split (evenly spaced)")
    check.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                       help="data option, e.g. --set data.taskonomy_split=tiny (repeatable)")

    bench = sub.add_parser(
        "bench", help="run an experiment: methods and variants x task orders x seeds, resumably",
        description="Run every (method or variant x order x seed) of an experiment file (or of its command-line "
                    "form) into one directory: DIR/experiment.yaml, DIR/runs/<order>/<label>-s<seed>/ (each an lhl "
                    "run directory with bench-status.json). Every run's configuration is checked before anything "
                    "starts. Complete runs are skipped, incomplete ones resumed, so a stopped bench continues where "
                    "it stopped; a failing run is recorded with its error and the others go on (exit status 1 at "
                    "the end). When every run is complete, the lhl compare table is printed.")
    bench.add_argument("experiment", nargs="?", metavar="EXPERIMENT.yaml",
                       help="experiment file (keys: base, set, methods, variants, seeds, orders, baseline)")
    bench_base = bench.add_mutually_exclusive_group()
    bench_base.add_argument("--preset", metavar="NAME", help="without a file: the base preset")
    bench_base.add_argument("--config", metavar="FILE", help="without a file: the base config file")
    bench.add_argument("--methods", metavar="A,B", help="without a file: comma-separated methods")
    bench.add_argument("--seeds", metavar="0,1", help="without a file: comma-separated seeds (default 0)")
    bench.add_argument("--orders", metavar="'a,b,c;c,b,a'",
                       help="without a file: task orders, tasks separated by ',' and orders by ';' (default: the "
                            "base configuration's order)")
    bench.add_argument("--baseline", metavar="LABEL", help="without a file: the row Δ is measured against "
                       "(default: vanilla when it runs, else the first label)")
    bench.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                       help="override a config key in every run (repeatable; also with a file, after its set:)")
    bench.add_argument("--out", metavar="DIR", help="the experiment directory")
    bench.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="N runs at a time in worker processes, each with max(1, cores // N) threads, or one "
                            "GPU each when device is cuda and several are visible (default 1: in this process)")
    bench.add_argument("--shard", metavar="I/N",
                       help="run only runs i with i %% N == I-1 (0-based i as --list prints it): one slice of N, "
                            "e.g. --shard $SLURM_ARRAY_TASK_ID/N")
    bench.add_argument("--list", action="store_true", dest="list_runs",
                       help="print the run list (index, label, order, seed, run directory) and exit")
    bench.add_argument("--status", metavar="DIR", help="print how many runs of DIR are done, failed, running, "
                       "pending, with the failed runs' errors, and exit")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from lhl.engine.trainer import Trainer
    from lhl.report.tables import format_performance_matrix

    if args.resume and not args.out:
        raise ConfigError("--resume needs --out DIR (the run directory to continue)")
    config = load_config(args.config, args.preset, args.method, args.overrides)
    out = args.out
    if out is None:
        name = args.preset or (Path(args.config).stem if args.config else "synthetic-nyu-demo")
        out = f"runs/{name}-{config.method['name']}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    trainer = Trainer(config, out, quiet=args.quiet, resume=args.resume)
    performance = trainer.run()
    print(f"\nperformance matrix ({performance['method']} on {performance['benchmark']}):")
    print(format_performance_matrix(performance))
    print(f"\nrun directory: {out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from lhl.report.compare import comparison_table, load_runs

    print(comparison_table(load_runs(args.runs), args.baseline))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    load_builtins()
    if args.what == "presets":
        names = preset_names()
    elif args.what == "tasks":
        from lhl.data import benchmark_tasks

        print("task types (registered):")
        print("\n".join(f"  {name}" for name in TASKS.names()))
        print("tasks each benchmark offers (default order first; set the order with tasks=[...]):")
        for benchmark, tasks in benchmark_tasks().items():
            print(f"  {benchmark}: {', '.join(tasks)}")
        return 0
    else:
        names = {"methods": METHODS, "benchmarks": BENCHMARKS, "tasks": TASKS, "encoders": ENCODERS}[args.what].names()
    print("\n".join(names))
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "check":
        return _cmd_data_check(args)
    from lhl.data.synthetic.preview import save_preview_grid

    if args.count < 1:
        raise ConfigError(f"--count: invalid value {args.count}; expected an integer >= 1")
    if min(args.resolution) < 8:
        raise ConfigError(f"--resolution: invalid value {args.resolution}; expected H W, each an integer >= 8")

    path = save_preview_grid(args.out, seed=args.seed, split=args.split, count=args.count,
                             resolution=tuple(args.resolution))
    print(f"wrote {path}")
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from lhl.config import parse_override
    from lhl.config.schema import DataConfig, build_dataclass
    from lhl.data.check import check_dataset
    from lhl.data.disk import FileBenchmark

    load_builtins()
    cls = BENCHMARKS.get(args.benchmark)
    if not issubclass(cls, FileBenchmark):
        raise ConfigError(f"--benchmark {args.benchmark!r} is not read from disk; nothing to check")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit: invalid value {args.limit}; expected an integer >= 1")
    values = {"root": args.root}
    for text in args.overrides:
        key, value = parse_override(text)
        if not key.startswith("data."):
            raise ConfigError(f"--set {key}: only data.* options apply to 'lhl data check'")
        values[key[len("data."):]] = value
    report = check_dataset(cls(build_dataclass(DataConfig, values, "data"), 0), limit=args.limit)
    print(report.format())
    return 1 if report.problems else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from lhl.experiments.command import bench

    return bench(args.experiment, preset=args.preset, config=args.config, methods=args.methods, seeds=args.seeds,
                 orders=args.orders, sets=args.overrides, baseline=args.baseline, out=args.out, jobs=args.jobs,
                 shard=args.shard, list_runs=args.list_runs, status=args.status)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"run": _cmd_run, "compare": _cmd_compare, "list": _cmd_list, "data": _cmd_data, "bench": _cmd_bench}
    debug = args.debug or os.environ.get("LHL_DEBUG", "") not in ("", "0")
    try:
        return handlers[args.command](args)
    except LhlError as exc:
        return _report(exc, str(exc), exc.exit_code, debug)
    except OSError as exc:  # the file system: permissions, a full disk, a missing file
        code = 2 if exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOTDIR, errno.EISDIR) else 1
        where = f"{exc.filename}: " if exc.filename else ""
        return _report(exc, f"{where}{exc.strerror or exc}", code, debug)
    except KeyboardInterrupt as exc:
        return _report(exc, "interrupted", 130, debug)


def _report(exc: BaseException, message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc)
    message = " ".join(message.split()) or type(exc).__name__  # always one line
    print(f"lhl: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
