#!/usr/bin/env bash
# Pilots of issue "The best default this CPU can train": short paired runs from the same start,
# one after another on both cores (niced, so that other work on the machine keeps its speed).
# Repeating the script resumes an unfinished pilot exactly from its last checkpoint (every 250
# steps; SIGTERM checkpoints and stops), judges a trained one that is not judged yet, and skips
# judged ones (their per-image CSV is under results/default/pilots/).
#   nohup bash results/default/pilots.sh >> runs/pilots/pilots.log 2>&1 &
# ONLY=NAME runs that pilot alone. Each pilot's Kodak evaluation is a separate step
# (results/default/README.md, "Pilots").
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
PY=${PYTHON:-$PWD/.venv/bin/python}
STEPS=${STEPS:-1500}
mkdir -p runs/pilots
exec 9>runs/pilots/pilots.lock
flock -n 9 || { echo "pilots already running"; exit 0; }
DEFAULT=jaxlic/pretrained/archive/ckbd-full-vr-q0-53d4393ae095565b.msgpack  # the float original of the shipped default
ABLATION=results/ablation/weights/ckbd-full-s0.msgpack
pilot() {  # pilot NAME CONFIG_ARGS INIT [extra overrides...]
  local name=$1 args=$2 init=$3 dir=runs/pilots/$1
  shift 3
  [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ] && return 0
  [ -e "results/default/pilots/per_image_$name.csv" ] && return 0  # judged (its runs/ may be gone)
  if ! ls "$dir"/export/*.json > /dev/null 2>&1; then
    echo "$(date -u +%FT%TZ) pilot $name: start/resume"
    nice -n 10 $PY -m train.main --config "train/configs/ckbd.py:cpu,$args" --workdir "$dir" \
      --config.init_from="$init" --config.seed=0 --config.num_steps="$STEPS" \
      --config.optim.learning_rate=2e-4 --config.optim.warmup_steps=100 --config.eval_every_steps=500 \
      "$@" >> "runs/pilots/$name.log" 2>&1
    local rc=$?
    echo "$(date -u +%FT%TZ) pilot $name: exit $rc"
    $PY -m results.default.validation_record "runs/pilots/$name.log" "results/default/pilots/$name.validation.txt" > /dev/null
    [ $rc -eq 0 ] || return $rc
  fi
  judge "$name" || echo "$(date -u +%FT%TZ) pilot $name: judging failed (see runs/pilots/$name.log)"
  return 0
}
# Each finished pilot is judged on the 24 Kodak images (real streams, rate parameters 0, 3, 6)
# against the default, per image at matched rate; the CSV and the comparison are kept in
# results/default/pilots/ (commit them).
judge() {
  local name=$1 out=runs/pilots/eval/$1
  echo "$(date -u +%FT%TZ) pilot $name: judging"
  nice -n 10 $PY -m jaxlic.cli eval ../shared/data/kodak --weights "runs/pilots/$name/export/ckbd-full-vr-q0.msgpack" \
    --rates 0,3,6 --out "$out" --force >> "runs/pilots/$name.log" 2>&1 || return
  cp "$out"/per_image_*.csv "results/default/pilots/per_image_$name.csv" || return
  $PY -m jaxlic.cli compare "results/default/pilots/per_image_$name.csv" \
    --against results/default/per_image_ckbd-full-vr-4000steps.csv --same-points --at-bpp 0.05,0.1,0.15,0.25,0.4 \
    > "results/default/pilots/${name}_vs_default.txt" 2>&1
  echo "$(date -u +%FT%TZ) pilot $name: judged (results/default/pilots/${name}_vs_default.txt)"
}
# Pair 1, the start: the shipped default (23k steps, collapsed hyperprior) against the ablation's
# ckbd-full s0 (5000 variable-rate steps from scratch, live hyperprior); both with z gains.
pilot start-default vr,zgain "$DEFAULT" || exit
# start-ablation was stopped at step ~600 (2026-12-07, third session): at step 500 its validation
# RD loss was 35-72% above start-default's at the same step (results/default/README.md), a gap
# far beyond what 1000 more steps could close; resume it with ONLY=start-ablation RESUME_ABLATION=1.
[ -n "${RESUME_ABLATION:-}" ] && { pilot start-ablation vr,zgain "$ABLATION" || exit; }
# Pair 2, z: the better start without z gains (the default's start here; see the README).
pilot z-none vr "$DEFAULT" || exit
# Pair 3, the width: the default's start widened to M=128 latent channels (train/widen.py: it
# computes what the default computes; the new channels start small), no z gains; paired with
# z-none (M=64). Its reason: at M=64 the default's reconstruction without quantisation tops out
# at 28.7 dB, the ceiling of its curve (results/default/README.md, "Decision 3").
WIDE=runs/pilots/wide128-init.msgpack
[ -e "$WIDE" ] || $PY -m train.widen "$DEFAULT" "$WIDE" --M 128 || exit
pilot wide128 vr "$WIDE" --config.M=128 || exit
# wide128 left its new channels dead (README, "Decision 3"); wide128-live starts them at full size
# with priors copied from old channels (train/widen.py --live).
WIDE_LIVE=runs/pilots/wide128-live-init.msgpack
[ -e "$WIDE_LIVE" ] || $PY -m train.widen "$DEFAULT" "$WIDE_LIVE" --M 128 --live || exit
pilot wide128-live vr "$WIDE_LIVE" --config.M=128 || exit
# Pair 4, the crop: 256 px crops, batch 4, paired with z-none (the recipe of decisions 1-3: the
# default's start, no z gains, M=64) at the same pixels, hence about the same CPU: a step of
# 4 x 256^2 is two of 8 x 128^2 (5.1 s against 2.6 s on the 2-core AMD EPYC VM), so 750 steps
# against 1500, each with its own full cosine schedule. (A first crop256 with z gains, paired
# with start-default, was stopped at step 8 when decision 2 dropped z gains.)
STEPS=$((STEPS / 2)) pilot crop256 vr "$DEFAULT" --config.data.crop_size=256 --config.batch_size=4 || exit
# crop256 won on Kodak (BD-rate -3.6% against z-none, README "The crop"), but a step of 4 x 256^2
# costs two of 8 x 128^2, so 60k steps of it would double the long run's CPU. crop256-b2: 256 px
# crops in batches of 2, the pixels (and about the CPU) of a 128 px step, 1500 steps: pixel-matched
# with z-none and crop256; if it holds up, the long run keeps its planned cost at 256 px.
pilot crop256-b2 vr "$DEFAULT" --config.data.crop_size=256 --config.batch_size=2 || exit
