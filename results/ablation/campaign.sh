#!/usr/bin/env bash
# The ablation campaign (issue "The seed's ablation"): five checkerboard variants trained alike as
# variable-rate models from scratch, plus a second seed of ckbd and ckbd-full. It ships nothing:
# a finished run becomes the default with tools/ship_default.py (the continuation that made the
# current default, once the `cont` step here, is recorded in results/ablation/README.md). One run per core
# at a time, in this order; repeating the script resumes each unfinished run exactly from its
# last checkpoint (every 250 steps) and skips finished ones (their export exists).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
PY=${PYTHON:-$PWD/.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
STEPS=${STEPS:-5000}
mkdir -p runs/ablation  # logs and chain locks; a new checkout has no runs/
# WIDE=1: one run on both cores (no taskset), for a run that would not finish in a session on
# one core; ONLY=VARIANT-sSEED: that run (and its evaluation) alone, the chain's others skipped.
pin() { local core=$1; shift; if [ "${WIDE:-0}" = 1 ]; then "$@"; else taskset -c "$core" "$@"; fi; }
[ "${WIDE:-0}" = 1 ] && export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
run() {  # run CORE VARIANT SEED
  local core=$1 variant=$2 seed=$3 dir=runs/ablation/$2-s$3
  [ -f "$dir/export/$variant-vr-q0.json" ] && return 0
  pin "$core" $PY -m train.main --config "train/configs/ckbd.py:cpu,vr,$variant" --workdir "$dir" \
    --config.seed="$seed" --config.num_steps="$STEPS" >> "runs/ablation/$variant-s$seed.log" 2>&1
}
compact_eval() {  # compact_eval CORE EXPORT WEIGHTS OUT LOG [jaxlic eval args]: the compact copy
  # (float16, checked against the export on two images), then its Kodak curve as stored
  local core=$1 src=$2 w=$3 out=$4 log=$5
  shift 5
  [ -f "$w" ] || $PY tools/compact_weights.py "$src" "$w" \
    --check ../shared/data/kodak/kodim05.png ../shared/data/kodak/kodim23.png >> "$log" 2>&1 || return 1
  pin "$core" $PY -m jaxlic.cli eval ../shared/data/kodak --weights "$w" --out "$out" --force "$@" >> "$log" 2>&1
}
evaluate() {  # evaluate CORE VARIANT SEED: Kodak curve of a finished run (8 rate points, real streams)
  # of its compact weights (committed under results/ablation/weights/), the file the table quotes
  local core=$1 variant=$2 seed=$3 out=runs/abl/$2-s$3
  [ -f "$out/per_image_$variant-vr.csv" ] && return 0
  mkdir -p results/ablation/weights results/ablation/kodak
  compact_eval "$core" "runs/ablation/$variant-s$seed/export/$variant-vr-q0.msgpack" \
    "results/ablation/weights/$variant-s$seed.msgpack" "$out" "runs/ablation/eval-$variant-s$seed.log" || return 1
  cp "$out/per_image_$variant-vr.csv" "results/ablation/kodak/$variant-s$seed.csv"
}
# A run whose per-image rows are committed is done: a new checkout has no runs/ (it does not
# outlive the session that made it), and committed results must not be trained again.
both() {
  [ -f "results/ablation/kodak/$2-s$3.csv" ] && return 0
  [ -n "${ONLY:-}" ] && [ "$ONLY" != "$2-s$3" ] && return 0
  run "$@" && evaluate "$@"
}
# Order: the two faster variants first, so that each fits in one session (runs/ does not outlive it).
chain0() { both 0 ckbd 0 && both 0 ckbd-gmm 0 && both 0 ckbd 1 && both 0 ckbd-full 1; }
chain1() { both 1 ckbd-full 0 && both 1 ckbd-pp 0 && both 1 ckbd-attn 0; }
# Usage: campaign.sh [0|1|all]. One chain per core; a chain already running is not started twice.
# A second start waits for the first (a run it left is finished or resumed, a finished one skipped).
locked() { exec 9>"runs/ablation/chain$1.lock"; flock -n 9 || { echo "chain $1 is running: waiting"; flock 9; }; "chain$1"; }
case "${1:-all}" in
  0) locked 0; exit ;;
  1) locked 1; exit ;;
esac
( locked 0 ) & ( locked 1 ) &
wait
K=results/ablation/kodak W=results/ablation/weights
# decoding times side by side (interleaved rounds, nothing else running), then the table
$PY -m eval.decode_time --weights ckbd=$W/ckbd-s0.msgpack --weights ckbd-attn=$W/ckbd-attn-s0.msgpack \
  --weights ckbd-gmm=$W/ckbd-gmm-s0.msgpack --weights ckbd-pp=$W/ckbd-pp-s0.msgpack \
  --weights ckbd-full=$W/ckbd-full-s0.msgpack --rounds 9 --json results/ablation/decode_time.json
$PY -m eval.ablation \
  --variant ckbd=$K/ckbd-s0.csv --variant ckbd-attn=$K/ckbd-attn-s0.csv \
  --variant ckbd-gmm=$K/ckbd-gmm-s0.csv --variant ckbd-pp=$K/ckbd-pp-s0.csv \
  --variant ckbd-full=$K/ckbd-full-s0.csv \
  --second-seed ckbd=$K/ckbd-s1.csv --second-seed ckbd-full=$K/ckbd-full-s1.csv \
  --weights ckbd=results/ablation/weights/ckbd-s0.msgpack --weights ckbd-attn=results/ablation/weights/ckbd-attn-s0.msgpack \
  --weights ckbd-gmm=results/ablation/weights/ckbd-gmm-s0.msgpack --weights ckbd-pp=results/ablation/weights/ckbd-pp-s0.msgpack \
  --weights ckbd-full=results/ablation/weights/ckbd-full-s0.msgpack --flops \
  --decode-times results/ablation/decode_time.json --out results/ablation
echo ABLATION DONE
