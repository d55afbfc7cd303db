"""Mean encoder gradient norm of each loss term over a run's ``grad_norms`` events (phases ≥ 2).

    python experiments/grad_norms.py RUN_DIR ...

Each ``grad_norms`` event holds, for one batch per epoch, the L2 norm of the gradient each loss
term alone sends into the shared encoder. Terms are grouped by prefix (``db``, ``sg``, ``dis``,
``new`` …) and averaged over old tasks and epochs; the maximum is printed too, since HAD's
geometric mean (derivative GM/(n(ℓ+ε))) can spike when a pixel's loss approaches 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def term_norms(run_dir: Path) -> dict[str, list[float]]:
    norms: dict[str, list[float]] = defaultdict(list)
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "grad_norms" and event["phase"] >= 2:
            for name, value in event["encoder"].items():
                norms[name.split("/")[0]].append(value)
    return norms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    print("| run | term | mean | max |\n|---|---|---|---|")
    for run_dir in args.runs:
        for term, values in sorted(term_norms(run_dir).items()):
            print(f"| {run_dir.name} | {term} | {statistics.mean(values):.3f} | {max(values):.3f} |")


if __name__ == "__main__":
    main()
