"""One handler per ``lhl`` command: ``cmd_<command>(args) -> exit code``, found through :data:`HANDLERS`. Each imports what it
needs when it runs, so ``lhl --help`` and a bad option stay fast; a user's mistake is raised as an
:class:`~lhl.errors.LhlError` and :func:`lhl.cli.main` prints it as one line."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from lhl.config import ConfigError, load_config, preset_names
from lhl.registry import BENCHMARKS, ENCODERS, METHODS, TASKS, load_builtins


def cmd_run(args: argparse.Namespace) -> int:
    from lhl.engine import distributed
    from lhl.engine.trainer import Trainer
    from lhl.report.tables import format_performance_matrix

    if args.resume and not args.out:
        raise ConfigError("--resume needs --out DIR (the run directory to continue)")
    overrides = args.overrides + (["logging.tensorboard=true"] if args.tensorboard else [])
    config = load_config(args.config, args.preset, args.method, overrides)
    out = args.out
    if out is None:
        name = args.preset or (Path(args.config).stem if args.config else "synthetic-nyu-demo")
        out = f"runs/{name}-{config.method['name']}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.nproc is not None:
        return _launch_processes(args, config, out)
    if distributed.launched_by_torchrun() and args.out is None:
        raise ConfigError("under torchrun pass --out DIR (every process must name the same run directory)")
    trainer = Trainer(config, out, quiet=args.quiet, resume=args.resume)
    try:
        performance = trainer.run()
    finally:
        distributed.shutdown()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # process 0 prints the result
    print(f"\nperformance matrix ({performance['method']} on {performance['benchmark']}):")
    print(format_performance_matrix(performance))
    print(f"\nrun directory: {out}")
    return 0


def _launch_processes(args: argparse.Namespace, config, out: str) -> int:
    """``lhl run --nproc N``: check the configuration here (one error line, before any process
    starts), then run the same command under torchrun (:mod:`lhl.engine.launch`)."""
    from lhl.engine import distributed
    from lhl.engine.build import build_run
    from lhl.engine.launch import launch

    if distributed.launched_by_torchrun():
        raise ConfigError("--nproc: this process was already started by torchrun; drop --nproc")
    if args.nproc < 1:
        raise ConfigError(f"--nproc: invalid value {args.nproc}; expected an integer >= 1")
    run = build_run(config)
    distributed.check_processes(args.nproc, run.device, config.train.batch_size)
    argv = ["run"]
    for flag, value in (("--config", args.config), ("--preset", args.preset), ("--method", args.method)):
        if value is not None:
            argv += [flag, value]
    for override in args.overrides:
        argv += ["--set", override]
    argv += ["--out", out] + ["--resume"] * args.resume + ["--quiet"] * args.quiet
    argv += ["--tensorboard"] * args.tensorboard
    if args.debug:
        argv.insert(0, "--debug")
    return launch(argv, args.nproc)


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from lhl.engine.evaluation import EVAL_SPLITS, evaluate_run
    from lhl.engine.loading import load_run
    from lhl.report.tables import format_phase_metrics

    if args.split not in EVAL_SPLITS:
        raise ConfigError(f"--split: invalid value {args.split!r}; expected {' or '.join(EVAL_SPLITS)} ('val' for a "
                          "run with data.val_size > 0)")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size: invalid value {args.batch_size}; expected an integer >= 1")
    loaded = load_run(args.run_dir, args.phase, args.device, data_root=args.data_root)
    metrics = evaluate_run(loaded, args.split, args.batch_size, quiet=not sys.stderr.isatty())
    if args.json:
        print(json.dumps({"phase": loaded.phase, "task": loaded.label, "metrics": metrics}, indent=2))
    else:
        print(format_phase_metrics(loaded.phase, loaded.label, metrics))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from lhl.engine.loading import load_run
    from lhl.engine.prediction import predict_images

    loaded = load_run(args.run_dir, args.phase, args.device, check_data=False)
    written = predict_images(loaded, args.images, args.out, raw=args.raw)
    print(f"wrote {len(written)} files to {args.out} (phase {loaded.phase} of {args.run_dir})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from lhl.report.compare import comparison_table, load_runs

    print(comparison_table(load_runs(args.runs), args.baseline))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lhl.report.experiment import write_report

    if args.samples < 0:
        raise ConfigError(f"--samples: invalid value {args.samples}; expected an integer >= 0")
    files = write_report(args.dir, baseline=args.baseline, out=args.out, samples=args.samples)
    for note in (f"left out {path} ({why})" for path, why in files.experiment.skipped):
        print(f"lhl: note: {note}", file=sys.stderr)
    print(f"wrote {files.markdown}, {files.html}, {files.latex}, {files.csv} and {len(files.figures)} figures")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
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


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "check":
        return _data_check(args)
    if args.data_command == "render":
        return _data_render(args)
    from lhl.data.synthetic.preview import save_preview_grid

    if args.count < 1:
        raise ConfigError(f"--count: invalid value {args.count}; expected an integer >= 1")
    if min(args.resolution) < 8:
        raise ConfigError(f"--resolution: invalid value {args.resolution}; expected H W, each an integer >= 8")

    path = save_preview_grid(args.out, seed=args.seed, split=args.split, count=args.count,
                             resolution=tuple(args.resolution))
    print(f"wrote {path}")
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from lhl.config.schema import DataConfig, build_dataclass
    from lhl.data.check import check_dataset
    from lhl.data.disk import FileBenchmark

    load_builtins()
    cls = BENCHMARKS.get(args.benchmark)
    if not issubclass(cls, FileBenchmark):
        raise ConfigError(f"--benchmark {args.benchmark!r} is not read from disk; nothing to check")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit: invalid value {args.limit}; expected an integer >= 1")
    values = {"root": args.root, **_data_values(args.overrides, "check")}
    report = check_dataset(cls(build_dataclass(DataConfig, values, "data"), 0), limit=args.limit)
    print(report.format())
    return 1 if report.problems else 0


def _data_values(overrides: list[str], command: str) -> dict:
    """``--set data.KEY=VALUE`` options as a ``data`` mapping (other sections refused)."""
    from lhl.config import parse_override

    values = {}
    for text in overrides:
        key, value = parse_override(text)
        if not key.startswith("data."):
            raise ConfigError(f"--set {key}: only data.* options apply to 'lhl data {command}'")
        values[key[len("data."):]] = value
    return values


def _data_render(args: argparse.Namespace) -> int:
    from lhl.config.schema import DataConfig, build_dataclass
    from lhl.data.synthetic.export import render_to_disk

    values = _data_values(args.overrides, "render")
    for key, value in (("resolution", args.resolution), ("train_size", args.train_size),
                       ("test_size", args.test_size), ("num_workers", args.workers)):
        if value is not None:
            values[key] = list(value) if key == "resolution" else value
    data = build_dataclass(DataConfig, values, "data")
    tty = sys.stderr.isatty()

    def progress(split: str, done: int, total: int) -> None:
        if tty:
            print(f"\rrendering {split}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr,
                  flush=True)

    start = time.perf_counter()
    record = render_to_disk(args.out, args.benchmark, data, seed=args.seed, batch=args.batch, progress=progress)
    seconds = time.perf_counter() - start
    count = record["train_size"] + record["test_size"]
    height, width = record["resolution"]
    print(f"wrote {args.out}: {record['train_size']} train + {record['test_size']} test images at {height}x{width} "
          f"({args.benchmark}, seed {args.seed}) in {seconds:.1f} s ({count / max(seconds, 1e-9):.1f} images/s); "
          f"train on it with --set data.root={args.out} and benchmark nyuv2")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from lhl.engine.pretrain import PretrainRecipe, cached_weights_path, pretrain

    recipe = PretrainRecipe(encoder=args.encoder.lower(), images=args.images, epochs=args.epochs,
                            resolution=tuple(args.resolution), batch_size=args.batch_size, lr=args.lr,
                            weight_decay=args.weight_decay, seed=args.seed, heldout=args.heldout,
                            threads=args.threads)
    echo = (lambda _line: None) if args.quiet else (lambda line: print(line, flush=True))
    record = pretrain(recipe, args.out, echo)
    path = Path(args.out).expanduser() if args.out else cached_weights_path(recipe.encoder)
    minutes = record["seconds"]["total"] / 60
    print(f"wrote {path} (sha256 {record['sha256']}) and {path.with_suffix('.json').name} in {minutes:.1f} min")
    if path.resolve() == cached_weights_path(recipe.encoder).resolve():
        print(f"model.weights: synthetic-pretrained now loads it for encoder {recipe.encoder}")
    else:
        print(f"use it with model.weights: {path}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from lhl.experiments.command import sweep

    return sweep(args.sweep, out=args.out, jobs=args.jobs, shard=args.shard, list_runs=args.list_runs,
                 status=args.status)


def cmd_bench(args: argparse.Namespace) -> int:
    from lhl.experiments.command import bench

    return bench(args.experiment, preset=args.preset, config=args.config, methods=args.methods, seeds=args.seeds,
                 orders=args.orders, sets=args.overrides, baseline=args.baseline, out=args.out, jobs=args.jobs,
                 shard=args.shard, list_runs=args.list_runs, status=args.status)


HANDLERS = {"run": cmd_run, "bench": cmd_bench, "sweep": cmd_sweep, "eval": cmd_eval, "predict": cmd_predict, "compare": cmd_compare, "report": cmd_report, "list": cmd_list, "data": cmd_data, "pretrain": cmd_pretrain}
