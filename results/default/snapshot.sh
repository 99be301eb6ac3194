#!/usr/bin/env bash
# A compact copy of the stopped long run's newest checkpoint, so that a lost runs/ costs a warm
# start, not the run (issue "The best default this CPU can train"):
#   kill -TERM <longrun.sh's pid>; bash results/default/snapshot.sh    (then commit the file)
# The trainer, resumed with num_steps at the checkpoint's step, trains nothing and exports the
# weights; tools/compact_weights.py keeps them (float16) as results/default/weights/long-<step>.msgpack,
# the newest of which longrun.sh warm-starts from when runs/long is gone. Between the 20k
# milestones one such snapshot is enough: git rm the one it replaces.
# Settings (environment), as longrun.sh's: RUN, WEIGHTS, CONFIG.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
PY=${PYTHON:-$PWD/.venv/bin/python}
RUN=${RUN:-runs/long}
WEIGHTS=${WEIGHTS:-results/default/weights}
CONFIG=${CONFIG:-cpu,vr}
[ -e "$RUN/offset" ] || { echo "no long run in $RUN"; exit 1; }
exec 9> "$RUN/lock"
flock -n 9 || { echo "the long run is running: stop it first (SIGTERM to longrun.sh)"; exit 1; }
step=$(ls "$RUN/checkpoints" 2> /dev/null | grep -E '^[0-9]+$' | sort -n | tail -1)
[ -n "$step" ] || { echo "no checkpoint in $RUN/checkpoints"; exit 1; }
M=$(cat "$RUN/M" 2> /dev/null)
read -r CROP BATCH < "$RUN/data" 2> /dev/null || CROP= BATCH=
OFFSET=$(cat "$RUN/offset")
out=$WEIGHTS/long-$((step + OFFSET)).msgpack
$PY -m train.main --config "train/configs/ckbd.py:$CONFIG" --workdir "$RUN" ${M:+--config.M=$M} \
  ${CROP:+--config.data.crop_size=$CROP} ${BATCH:+--config.batch_size=$BATCH} \
  --config.init_from="$(cat "$RUN/init")" --config.seed=1 --config.num_steps="$step" >> "$RUN/snapshot.log" 2>&1 \
  || { echo "export failed (see $RUN/snapshot.log)"; exit 1; }
weights=$(ls -t "$RUN"/export/*.msgpack | head -1)
$PY tools/compact_weights.py "$weights" "$out" >> "$RUN/snapshot.log" 2>&1 || { echo "compacting failed (see $RUN/snapshot.log)"; exit 1; }
echo "step $((step + OFFSET)) of $RUN: $out (commit it)"
