#!/usr/bin/env bash
# Issue 4's comparison on synthetic-nyu-demo: vanilla, joint, DIS, HAD (paper and reference
# variants), the Table 4 ablations and HAD with ε = 1e-4, for seeds 0 and 1.
#
#   bash experiments/had_ablations.sh [OUT_DIR] [JOBS]
#
# Runs JOBS runs at a time (default 2, one torch thread each) and prints the comparison table
# (`lhl compare`). Every method uses the demo preset's training settings and HAD's NYUv2-R18
# hyperparameters (α = 3, group threshold 0.5, edge threshold 0.9); nothing is tuned per method.
set -euo pipefail
out=${1:-runs/had-ablations}
jobs=${2:-2}
lhl=${LHL:-lhl}
mkdir -p "$out"

declare -A variants=(
  [vanilla]="--method vanilla"
  [joint]="--method joint"
  [dis]="--method dis"
  [had]="--method had"
  [had-reference]="--method had --set method.variant=reference"
  [had-no-sg]="--method had --set method.use_sg=false"
  [had-no-db]="--method had --set method.use_db=false"
  [had-arithmetic]="--method had --set method.group_mean=arithmetic"
  [had-groups5]="--method had --set method.regression_groups=5"
  [had-groups10]="--method had --set method.regression_groups=10"
  [had-eps1e-4]="--method had --set method.eps=0.0001"
)

commands=()
for label_seed in $(for s in 0 1; do for l in vanilla dis had had-reference had-no-sg had-no-db had-arithmetic had-groups5 had-groups10 had-eps1e-4; do echo "$l:$s"; done; done; echo joint:0 joint:1); do
  label=${label_seed%:*} seed=${label_seed#*:}
  dir="$out/$label-s$seed"
  [ -f "$dir/performance.json" ] && continue
  rm -rf "$dir"
  commands+=("OMP_NUM_THREADS=1 $lhl run --preset synthetic-nyu-demo ${variants[$label]} --set seed=$seed --out $dir --quiet > $dir.log 2>&1")
done
printf '%s\n' "${commands[@]}" | xargs -P "$jobs" -I{} bash -c '{}'
$lhl compare "$out"/*-s[0-9]*/
