#!/usr/bin/env bash
# One accelerator run of jaxlic in one command: install the carried wheels, train the `gpu`
# variant (ckbd-full, N=128, batch 16 x 256 px crops) under a wall-clock budget, time the train
# step, run the checkerboard-vs-serial decode benchmark (eval/speed.py) and the entropy-coding
# benchmark (eval/coding_speed.py), and leave at most 8 files in $OUT.
#
#   tools/gpu_wheels.sh                        # here, once: fills .whl/ (git-ignored)
#   tools/gpu_run.sh [DATA_DIR]                # there: DATA_DIR defaults to ../shared/data/train
#
# The same script runs on JAX's CPU backend (tests/test_gpu_run.py, with the smoke config).
# Environment (defaults in brackets):
#   OUT           output folder [$REPO/gpu_out]
#   BUDGET_S      training wall-clock budget in seconds, config.max_wall_s [300]
#   CONFIG        training config [train/configs/ckbd.py:gpu]
#   TRAIN_FLAGS   extra flags for train.main, e.g. "--config.num_steps=20000"
#   EVAL_DIR      validation images [$DATA_DIR/../kodak when it exists, else none]
#   WHEELS        folder of wheels to install when it holds any [$REPO/.whl]
#   STEP_ARGS     arguments of the train-step timing ["--steps 20"]
#   SPEED_ARGS    arguments of eval.speed ["--repeats 3"]
#   CODING_ARGS   arguments of eval.coding_speed ["--repeats 3"]
#   PYTHON        interpreter [python3]
#
# Files in $OUT: run.log (everything), train.log, step_time.json, speed.json, coding_speed.json,
# summary.json, export.tgz (exported weights + their metrics json + config.json + events).
# Exit status: non-zero when training failed; a failed benchmark is logged and recorded in
# summary.json but does not fail the run.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
DATA=${1:-../shared/data/train}
OUT=${OUT:-$REPO/gpu_out}
BUDGET_S=${BUDGET_S:-300}
CONFIG=${CONFIG:-train/configs/ckbd.py:gpu}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
WHEELS=${WHEELS:-$REPO/.whl}
STEP_ARGS=${STEP_ARGS:---steps 20}
SPEED_ARGS=${SPEED_ARGS:---repeats 3}
CODING_ARGS=${CODING_ARGS:---repeats 3}
PY=${PYTHON:-python3}
if [[ -z "${EVAL_DIR+x}" ]]; then
    EVAL_DIR=""
    [[ -d "$DATA/../kodak" ]] && EVAL_DIR="$DATA/../kodak"
fi

mkdir -p "$OUT" || exit 1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jaxlic-gpu-run.XXXXXX")
exec > >(tee -a "$OUT/run.log") 2>&1
export PYTHONUNBUFFERED=1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
status() { echo "== $(date +%H:%M:%S) $*"; }

# 1. Carried wheels (only the packages the machine lacks; see tools/gpu_wheels.sh).
shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if ((${#wheels[@]})); then
    status "installing ${#wheels[@]} wheels from $WHEELS"
    SITE="$WORK/site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "${wheels[@]}" || exit 1
    export PYTHONPATH="$REPO:$SITE${PYTHONPATH#"$REPO"}"
else
    status "no wheels in $WHEELS: using the installed packages"
fi
"$PY" - <<'EOF' || exit 1
import importlib, sys
missing = []
for name in ("jax", "flax", "optax", "orbax.checkpoint", "grain", "tensorboardX", "ml_collections", "constriction", "PIL"):
    try:
        importlib.import_module(name)
    except Exception as e:  # noqa: BLE001
        missing.append(f"{name} ({type(e).__name__}: {e})")
if missing:
    sys.exit("error: missing packages: " + ", ".join(missing) + "; run tools/gpu_wheels.sh and carry .whl")
import jax
print("python", sys.version.split()[0], "| jax", jax.__version__, "| devices", jax.devices())
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

# 2. Training under the budget (stops cleanly, checkpoints and exports; see config.max_wall_s).
status "training $CONFIG on $DATA for at most ${BUDGET_S}s (workdir $WORK/workdir)"
t0=$(date +%s)
# shellcheck disable=SC2086
"$PY" -m train.main --config "$CONFIG" --workdir "$WORK/workdir" \
    --config.data.source="$(realpath -m "$DATA")" --config.max_wall_s="$BUDGET_S" \
    --config.data.eval_dir="${EVAL_DIR:+$(realpath -m "$EVAL_DIR")}" $TRAIN_FLAGS >"$OUT/train.log" 2>&1
train_rc=$?
train_s=$(($(date +%s) - t0))
grep -E "step [0-9]+: loss|validation|Stopping|Exported|Error|error" "$OUT/train.log" | tail -n 30
status "training exited with $train_rc after ${train_s}s"

# 3. Train-step time (compilation excluded) of the same config, TRAIN_FLAGS included (the same
#    program as training's step, so a compilation cache serves it too).
status "timing the train step"
# shellcheck disable=SC2086
"$PY" -m eval.step_time --here --config "$CONFIG" --json "$OUT/step_time.json" $STEP_ARGS $TRAIN_FLAGS
step_rc=$?

# 4. Decode benchmarks: checkerboard vs serial context (eval/speed.py), entropy coding.
status "checkerboard vs serial decode (eval.speed)"
# shellcheck disable=SC2086
"$PY" -m eval.speed --json "$OUT/speed.json" $SPEED_ARGS
speed_rc=$?
status "entropy coding (eval.coding_speed)"
# shellcheck disable=SC2086
"$PY" -m eval.coding_speed --json "$OUT/coding_speed.json" $CODING_ARGS
coding_rc=$?

# 5. Exported weights, their metrics, config and TensorBoard events in one tarball.
W="$WORK/workdir"
(cd "$W" 2>/dev/null && tar czf "$OUT/export.tgz" --ignore-failed-read export config.json events.out.tfevents.*) || true
"$PY" - "$OUT" "$W" "$train_rc" "$train_s" "$step_rc" "$speed_rc" "$coding_rc" "$BUDGET_S" "$CONFIG" <<'EOF'
import glob, json, os, sys
out, work, train_rc, train_s, step_rc, speed_rc, coding_rc, budget, config = sys.argv[1:]
s = dict(config=config, budget_s=float(budget), train_rc=int(train_rc), train_wall_s=float(train_s),
         step_time_rc=int(step_rc), speed_rc=int(speed_rc), coding_speed_rc=int(coding_rc))
for path in glob.glob(os.path.join(work, "export", "*.json")):
    meta = json.load(open(path))
    s.update(export=os.path.basename(path), metrics=meta.get("metrics"))
for name in ("step_time", "speed", "coding_speed"):
    p = os.path.join(out, f"{name}.json")
    if os.path.exists(p):
        d = json.load(open(p))
        s[name] = {k: v for k, v in d.items() if not isinstance(v, list)}
json.dump(s, open(os.path.join(out, "summary.json"), "w"), indent=2, default=str)
print(json.dumps({k: s.get(k) for k in ("train_rc", "train_wall_s", "export", "metrics")}, default=str))
EOF
rm -rf "$WORK"
status "done: $(ls "$OUT" | tr '\n' ' ')"
exit "$train_rc"
