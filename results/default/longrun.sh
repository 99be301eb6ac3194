#!/usr/bin/env bash
# The long run of issue "The best default this CPU can train" (its recipe and the pilots behind it:
# results/default/README.md).
#   nohup bash results/default/longrun.sh >> runs/long/longrun.log 2>&1 &
# * Trains runs/long on both cores (niced: other work keeps its speed), checkpointing every 250
#   steps; SIGTERM to this script (or to the trainer) checkpoints and stops, and the same
#   command resumes exactly.
# * Without runs/long/ (a lost work tree) it warm-starts from the newest milestone committed in
#   results/default/weights/ (else from the shipped default's float original); the steps then
#   count on from that milestone's (runs/long/offset), with a fresh warm-up and a schedule over
#   what is left of TOTAL.
# * Every 10k steps the trainer exports runs/long/milestones/<step>/; the script then records it
#   with results/default/milestone.py (Kodak, 8 rate parameters, per image at matched rate
#   against JPEG 2000, WebP, AVIF and the default; progress.json and README's table) and, every
#   20k steps, keeps a compact copy (float16) in results/default/weights/long-<step>.msgpack.
#   Commit those files.
# * At a session's end, so that a lost runs/ costs a warm start and not the steps since the last
#   of those: stop the run (SIGTERM), then `SNAPSHOT=1 bash results/default/longrun.sh` exports its
#   newest checkpoint (the trainer, with the run's own flags and num_steps at that step, trains
#   nothing and exports) as compact weights results/default/weights/long-<step>.msgpack, the file
#   a new run warm-starts from; commit it, and git rm the snapshot it replaces.
# Settings (environment): M latent channels of a new run (unset: the config's, 64; a start from the
# M=64 default is first widened by train/widen.py; a resumed run keeps its own, runs/long/M, and a
# warm start from a milestone takes the milestone's; WIDEN_ARGS=--live for train/widen.py's live start), TOTAL steps (60000: the schedule, README), LR peak learning rate (2e-4), CONFIG args of
# train/configs/ckbd.py (cpu,vr: no z gains, decision 2), CROP and BATCH of a new run (256 px crops
# in batches of 2, decision 4; empty: the config's; a resumed run keeps its own, runs/long/data),
# EXTRA more trainer flags, SNAPSHOT=1 for a snapshot (above); for a smoke test also RUN,
# EVERY, COMPACT_EVERY, WEIGHTS and MILESTONE_ARGS (e.g. --images DIR --rates 0,7 --progress F
# --readme F) and INIT_FROM.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
PY=${PYTHON:-$PWD/.venv/bin/python}
RUN=${RUN:-runs/long}
TOTAL=${TOTAL:-60000}
LR=${LR:-2e-4}
CONFIG=${CONFIG:-cpu,vr}
M=${M:-}
CROP=${CROP-256}
BATCH=${BATCH-2}
EVERY=${EVERY:-10000}
COMPACT_EVERY=${COMPACT_EVERY:-20000}
WEIGHTS=${WEIGHTS:-results/default/weights}
mkdir -p "$RUN" "$WEIGHTS"
exec 9> "$RUN/lock"
if ! flock -n 9; then
  echo "the long run is already running${SNAPSHOT:+: stop it first (SIGTERM to longrun.sh)}"
  [ -n "${SNAPSHOT:-}" ] && exit 1 || exit 0
fi
log() { echo "$(date -u +%FT%TZ) $*"; }
[ -n "${SNAPSHOT:-}" ] && [ ! -e "$RUN/offset" ] && { echo "no long run in $RUN to snapshot"; exit 1; }

if [ ! -e "$RUN/offset" ]; then  # a new run: from the newest committed milestone, if any
  newest=$(ls "$WEIGHTS"/long-*.msgpack 2> /dev/null | sed 's/.*long-\([0-9]*\)\.msgpack/\1/' | sort -n | tail -1)
  if [ -n "${INIT_FROM+set}" ]; then  # smoke tests: another start ("" trains from scratch)
    echo 0 > "$RUN/offset"
    echo "$INIT_FROM" > "$RUN/init"
  elif [ -n "$newest" ]; then
    echo "$newest" > "$RUN/offset"
    echo "$WEIGHTS/long-$newest.msgpack" > "$RUN/init"
    M=$($PY -c 'import sys; from jaxlic import weights; print(weights.load(sys.argv[1])[1]["M"])' "$WEIGHTS/long-$newest.msgpack") || exit
  else
    start=jaxlic/pretrained/archive/ckbd-full-vr-q0-53d4393ae095565b.msgpack  # M=64
    if [ -n "$M" ] && [ "$M" != 64 ]; then
      $PY -m train.widen "$start" "$RUN/init-M$M.msgpack" --M "$M" ${WIDEN_ARGS:-} || exit
      start=$RUN/init-M$M.msgpack
    fi
    echo 0 > "$RUN/offset"
    echo "$start" > "$RUN/init"
  fi
  echo "$M" > "$RUN/M"  # the width and the crops stay the run's own when it resumes
  echo "$CROP $BATCH" > "$RUN/data"
fi
M=$(cat "$RUN/M" 2> /dev/null)
read -r CROP BATCH < "$RUN/data" 2> /dev/null || CROP= BATCH=  # (a run begun before decision 4: 128 px, 8)
OFFSET=$(cat "$RUN/offset")
INIT=$(cat "$RUN/init")
STEPS=$((TOTAL - OFFSET))

record() {  # milestones not recorded yet (the trainer's step + OFFSET names them)
  for dir in "$RUN"/milestones/*/; do
    [ -d "$dir" ] || continue
    local local_step step weights
    local_step=$(basename "$dir")
    step=$((local_step + OFFSET))
    [ -e "$dir/recorded" ] && continue
    weights=$(ls "$dir"/export/*.msgpack 2> /dev/null | head -1)
    [ -n "$weights" ] || continue
    log "milestone $step: recording"
    nice -n 10 $PY -m results.default.milestone --weights "$weights" --run long --step "$step" \
      ${MILESTONE_ARGS:-} >> "$RUN/milestones.log" 2>&1 &
    child=$!
    if wait $child; then
      if [ $((step % COMPACT_EVERY)) -eq 0 ]; then
        nice -n 10 $PY tools/compact_weights.py "$weights" "$WEIGHTS/long-$step.msgpack" >> "$RUN/milestones.log" 2>&1 \
          && log "milestone $step: compact weights in $WEIGHTS/long-$step.msgpack (commit them)"
      fi
      touch "$dir/recorded"
      log "milestone $step: recorded (results/default/progress.json)"
    else
      log "milestone $step: recording failed (see $RUN/milestones.log)"
    fi
  done
}

# The run's trainer, the same flags for training and snapshots (with --config.num_steps after them;
# a simple command, so that the trainer itself is $! when it runs in the background).
TRAINER=(nice -n 10 $PY -m train.main --config "train/configs/ckbd.py:$CONFIG" --workdir "$RUN"
  ${M:+--config.M=$M} ${CROP:+--config.data.crop_size=$CROP} ${BATCH:+--config.batch_size=$BATCH}
  --config.init_from="$INIT" --config.seed=1 --config.optim.learning_rate="$LR" --config.optim.warmup_steps=500
  --config.checkpoint_every_steps=250 --config.eval_every_steps=2000 --config.export_every_steps=$EVERY
  ${EXTRA:-})

if [ -n "${SNAPSHOT:-}" ]; then  # the newest checkpoint as compact weights (see the top)
  step=$(ls "$RUN/checkpoints" 2> /dev/null | grep -E '^[0-9]+$' | sort -n | tail -1)
  [ -n "$step" ] || { echo "no checkpoint in $RUN/checkpoints"; exit 1; }
  "${TRAINER[@]}" --config.num_steps="$step" >> "$RUN/snapshot.log" 2>&1 || { echo "export failed (see $RUN/snapshot.log)"; exit 1; }
  out=$WEIGHTS/long-$((step + OFFSET)).msgpack
  $PY tools/compact_weights.py "$(ls -t "$RUN"/export/*.msgpack | head -1)" "$out" >> "$RUN/snapshot.log" 2>&1 \
    || { echo "compacting failed (see $RUN/snapshot.log)"; exit 1; }
  echo "step $((step + OFFSET)) of $RUN: $out (commit it)"
  exit 0
fi

log "long run: steps $OFFSET..$TOTAL from $INIT, lr $LR, config $CONFIG${M:+, M=$M}${CROP:+, $CROP px crops}${BATCH:+, batch $BATCH}"
"${TRAINER[@]}" --config.num_steps="$STEPS" >> "$RUN/train.log" 2>&1 &
trainer=$!
child=
# (a milestone being recorded is stopped too; it is recorded again at the next start)
trap 'log "SIGTERM: stopping the trainer (it checkpoints)"; kill -TERM $trainer $child 2> /dev/null; wait $trainer; exit 143' TERM INT
while kill -0 $trainer 2> /dev/null; do
  sleep 120 9>&- & wait $!  # (the sleep must not hold the lock after a stop)
  record
done
wait $trainer
rc=$?
log "trainer exit $rc"
record
exit $rc
