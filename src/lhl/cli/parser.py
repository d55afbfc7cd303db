"""The ``lhl`` argument parser: one sub-parser per command (the handlers are in :mod:`lhl.cli.commands`)."""

from __future__ import annotations

import argparse

from lhl.config import preset_names
from lhl.config.schema import config_keys

RUN_HELP = """Train one method over a benchmark's task sequence and write a run directory:
config.yaml (resolved), events.jsonl, performance.json, checkpoints/phase-<t>.pt, summary.md,
provenance.json. Without --config/--preset the synthetic-nyu-demo preset runs."""

SET_HELP = ("override a config key with a dotted name and a YAML value, e.g. --set train.epochs=2 "
            "--set data.resolution=[64,64] --set method.alpha=3 --set device=cuda (repeatable). Keys: "
            + ", ".join(config_keys()))


def build_parser() -> argparse.ArgumentParser:
    from lhl.engine.pretrain import PretrainRecipe  # its defaults are lhl pretrain's (imports torch)

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
    run.add_argument("--quiet", action="store_true",
                     help="no progress output (on a terminal: progress bars; otherwise one line per epoch) and no "
                          "per-phase metrics")
    run.add_argument("--nproc", type=int, metavar="N",
                     help="train with N data-parallel processes on this machine: launches 'torchrun "
                          "--standalone --nproc_per_node=N -m lhl run ...' (gloo on the CPU, nccl with device=cuda, "
                          "one GPU per process); train.batch_size is the global batch, split evenly")
    run.add_argument("--tensorboard", action="store_true",
                     help="also write loss terms per step and metrics per phase as TensorBoard event files to "
                          "<out>/tensorboard/ (same as --set logging.tensorboard=true; needs pip install "
                          "'lhl[tensorboard]')")

    evaluate = sub.add_parser(
        "eval", help="re-evaluate a finished run's checkpoint on the test split",
        description="Load the checkpoint of a phase of a finished (or interrupted) run and evaluate every task "
                    "seen by then on the whole test split, as the run did after that phase; prints the metrics "
                    "like 'lhl run' does (with the run's batch size they equal performance.json's).")
    evaluate.add_argument("run_dir", metavar="RUN", help="run directory (the --out of 'lhl run')")
    evaluate.add_argument("--phase", type=int, metavar="T", help="phase to load (default: the last completed one)")
    evaluate.add_argument("--split", default="test", metavar="SPLIT",
                          help="split to evaluate: 'test' (default) or 'val' (a run with data.val_size > 0)")
    evaluate.add_argument("--batch-size", type=int, metavar="N",
                          help="images per batch (default: the run's train.eval_batch_size, or 2 × batch_size; "
                               "another value can change the last digits)")
    evaluate.add_argument("--device", metavar="DEVICE", help="cpu, cuda, cuda:N or mps (default: the run's device)")
    evaluate.add_argument("--data-root", metavar="DIR", help="dataset directory, if it moved (default: the run's "
                                                             "data.root)")
    evaluate.add_argument("--json", action="store_true",
                          help='print {"phase", "task", "metrics"} as JSON (the shape of a performance.json phase)')

    predict = sub.add_parser(
        "predict", help="run a finished run's model on image files and write colour-mapped predictions",
        description="Run the model of a finished run on image files (PNG, JPEG; resized to the run's "
                    "data.resolution and normalised as in training) and write, for every image and every task, "
                    "<stem>_<task>.png: the prediction colour-mapped at the image's size (segmentation: a fixed "
                    "palette; normals: RGB = (n+1)/2; depth and other tasks: first channel, min-max per image, "
                    "viridis for depth, magma otherwise). With --raw also <stem>_<task>.npy: the post-processed "
                    "prediction at the model's resolution ([H,W] class indices, or [C,H,W] values).")
    predict.add_argument("run_dir", metavar="RUN", help="run directory (the --out of 'lhl run')")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument("--out", default="predictions", metavar="DIR",
                         help="directory for the pictures (created; default: ./predictions)")
    predict.add_argument("--raw", action="store_true", help="also write <stem>_<task>.npy, the raw predictions")
    predict.add_argument("--phase", type=int, metavar="T", help="phase to load (default: the last completed one)")
    predict.add_argument("--device", metavar="DEVICE", help="cpu, cuda, cuda:N or mps (default: the run's device)")

    compare = sub.add_parser(
        "compare", help="tables of final metrics, Δ and mean rank across finished runs",
        description="Compare finished runs (any directory names; each run's identity comes from its config.yaml): "
                    "one table per benchmark and task order, one row per configuration (seeds pooled), final "
                    "metrics (mean over seeds), Δ over the baseline run of the same seed (eq. 11, mean ± std) and "
                    "mean rank. Undefined relative changes (a zero baseline value) show n/a with a note.")
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run directories")
    compare.add_argument("--baseline", default="vanilla", metavar="METHOD|LABEL",
                         help="method name or row label Δ is measured against (default: vanilla)")

    report = sub.add_parser(
        "report", help="an experiment's report: paper-style tables, curves, heat maps, qualitative grid, HTML",
        description="Report on every finished run directory under DIR (e.g. an lhl bench experiment, "
                    "EXP/runs/<order>/<label>-s<seed>/): the paper-style table per task order and averaged over "
                    "orders (final metrics mean ± std over seeds, Δ per seed vs the baseline (eq. 11), MR, "
                    "parameters, stored bytes, step time), per-phase curves, Δ/MR per phase, performance-matrix "
                    "heat maps, forgetting and backward transfer, training losses and a qualitative grid. Writes "
                    "report.md (with PNG files), report.html (self-contained), table.tex and table.csv. "
                    "Unfinished runs are left out with a note.")
    report.add_argument("dir", metavar="DIR", help="experiment directory (any tree holding run directories)")
    report.add_argument("--baseline", default="vanilla", metavar="METHOD|LABEL",
                        help="method name or row label Δ, MR and step time are measured against (default: "
                             "vanilla; e.g. dis or had for ablation tables)")
    report.add_argument("--out", metavar="REPORT_DIR", help="output directory (default: DIR/report)")
    report.add_argument("--samples", type=int, default=3, metavar="N",
                        help="test images in the qualitative grid (default 3; 0: no grid, no model is loaded)")

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

    rend = data_sub.add_parser(
        "render", help="render a synthetic benchmark once into NYUv2's .npy layout (read it with nyuv2)",
        description="Render the train and test splits of a synthetic benchmark into DIR in NYUv2's .npy layout "
                    "(DIR/{train,val}/{image,label,depth,normal}/<i>.npy, val = the test split) plus "
                    "DIR/render.json, so that the nyuv2 benchmark with data.root=DIR trains on the same images "
                    "and labels at loader speed. Written to a temporary directory and renamed when complete: "
                    "an interrupted render leaves no DIR. Only synthetic-nyu (the layout holds segmentation, "
                    "depth and normal).")
    rend.add_argument("--benchmark", required=True, metavar="NAME", help="synthetic-nyu")
    rend.add_argument("--out", required=True, metavar="DIR", help="directory to create (absent or empty)")
    rend.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"),
                      help="image size (same as --set data.resolution=[H,W]; default: data.resolution's default, "
                           "64 64)")
    rend.add_argument("--train-size", type=int, metavar="N",
                      help="training images (same as --set data.train_size=N; default: the benchmark's, 600)")
    rend.add_argument("--test-size", type=int, metavar="N",
                      help="test images (same as --set data.test_size=N; default: the benchmark's, 200)")
    rend.add_argument("--seed", type=int, default=0, help="the synthetic benchmark's seed (the run seed; default 0)")
    rend.add_argument("--workers", type=int, metavar="N",
                      help="worker processes rendering batches (same as --set data.num_workers=N; default 0)")
    rend.add_argument("--batch", type=int, default=8, metavar="N", help="images per renderer call (default 8)")
    rend.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                      help="data option: data.resolution, data.train_size, data.test_size or data.num_workers "
                           "(repeatable)")

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
    pre = sub.add_parser(
        "pretrain", help="pretrain an encoder on synthetic scenes no benchmark uses (model.weights: synthetic-pretrained)",
        description="Train an encoder once, ImageNet-style (image-level labels of each scene: class pixel fractions, "
                    "visible shapes, shape-material pairs, object hues, room materials, camera and light; GAP + a "
                    "linear head, discarded; classification strides), on rendered scenes of the 'pretrain' split, "
                    "which no benchmark reads. Writes the encoder's weights under "
                    "torchvision ResNet names to $LHL_HOME/weights/<encoder>-synthetic-pretrained.pt (default "
                    "~/.cache/lhl/weights) and a .json next to it (recipe, scenes, time, SHA-256); "
                    "model.weights: synthetic-pretrained then loads it. See docs/pretrained-weights.md.")
    defaults = PretrainRecipe()
    pre.add_argument("--encoder", default=defaults.encoder, metavar="NAME",
                     help=f"encoder to pretrain (see 'lhl list encoders'; default {defaults.encoder})")
    pre.add_argument("--images", type=int, default=defaults.images, metavar="N",
                     help=f"training images, rendered once and kept in memory (default {defaults.images})")
    pre.add_argument("--epochs", type=int, default=defaults.epochs, metavar="E", help=f"default {defaults.epochs}")
    pre.add_argument("--resolution", type=int, nargs=2, default=list(defaults.resolution), metavar=("H", "W"),
                     help=f"image size (default {defaults.resolution[0]} {defaults.resolution[1]})")
    pre.add_argument("--batch-size", type=int, default=defaults.batch_size, metavar="B",
                     help=f"default {defaults.batch_size}")
    pre.add_argument("--lr", type=float, default=defaults.lr, help=f"peak Adam learning rate (default {defaults.lr})")
    pre.add_argument("--weight-decay", type=float, default=defaults.weight_decay, metavar="WD",
                     help=f"default {defaults.weight_decay}")
    pre.add_argument("--seed", type=int, default=defaults.seed, metavar="S",
                     help="scene seed (scenes come from default_rng([S, 3, i])) and torch seed (default 0)")
    pre.add_argument("--heldout", type=int, default=defaults.heldout, metavar="N",
                     help=f"held-out images the objective is reported on (default {defaults.heldout})")
    pre.add_argument("--threads", type=int, default=0, metavar="N",
                     help="torch threads (default 0: torch's default, one per core; 1 is faster on a loaded machine)")
    pre.add_argument("--out", metavar="FILE",
                     help="weight file (default: $LHL_HOME/weights/<encoder>-synthetic-pretrained.pt, where "
                          "model.weights: synthetic-pretrained looks)")
    pre.add_argument("--quiet", action="store_true", help="no progress lines")
    sweep = sub.add_parser(
        "sweep", help="tune one method: a grid of settings x seeds x orders, selected on the validation split",
        description="Run every point of a sweep file's grid (a variant of its method) and its baseline over every "
                    "seed and order into DIR (as lhl bench: resumable, --jobs, --shard, --list, --status), then pick "
                    "the point with the largest mean validation Δ vs the baseline (performance.json 'validation'; "
                    "test metrics are never read for it) and write DIR/selected.yaml (a config file) and "
                    "DIR/sweep.md (validation Δ of every point; test numbers of the selected one only).")
    sweep.add_argument("sweep", nargs="?", metavar="SWEEP.yaml", help="the sweep file (see experiments/sweep-*.yaml)")
    sweep.add_argument("--out", metavar="DIR", help="the sweep directory")
    sweep.add_argument("--jobs", type=int, default=1, metavar="N", help="runs at a time (worker processes)")
    sweep.add_argument("--shard", metavar="I/N", help="run only shard I of N of the run list")
    sweep.add_argument("--list", action="store_true", dest="list_runs", help="print the run list and exit")
    sweep.add_argument("--status", metavar="DIR", help="print how many runs of DIR are done, failed, running, pending")
    return parser
