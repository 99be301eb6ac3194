#!/usr/bin/env bash
# The z gain trial (issue "The seed's ablation"): does giving z gain units of its own
# (`ModelConfig.z_gains`, config arg `vr,zgain`) lower the rate z costs at the low rate points?
# Two arms from the same start, ckbd-full s0 of the ablation (5000 steps, live hyperprior: z is
# 59% of the rate at q0), trained alike for STEPS more steps on one core; the `zgain` arm starts
# its z gains fresh (spread like y's), everything else from the file. The arms run one after the
# other on CORE (ARMS=plain CORE=0 and ARMS=zgain CORE=1: one per core at once); each one's
# validation (2 Kodak images at q0 / q3 / q7) is in its log.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
PY=${PYTHON:-$PWD/.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
STEPS=${STEPS:-400} CORE=${CORE:-0} ARMS=${ARMS:-plain zgain}
mkdir -p runs/zgain
for arm in $ARMS; do
  cfg=cpu,vr,ckbd-full
  [ "$arm" = zgain ] && cfg=$cfg,zgain
  [ -f "runs/zgain/$arm/export/ckbd-full-vr-q0.json" ] && continue
  taskset -c "$CORE" $PY -m train.main --config "train/configs/ckbd.py:$cfg" --workdir "runs/zgain/$arm" \
    --config.init_from=results/ablation/weights/ckbd-full-s0.msgpack --config.seed=0 \
    --config.num_steps="$STEPS" --config.optim.learning_rate=1.5e-4 --config.optim.warmup_steps=50 \
    --config.eval_every_steps=$((STEPS / 2)) >> "runs/zgain/$arm.log" 2>&1 || exit 1
done
for arm in $ARMS; do grep -a "validation:" "runs/zgain/$arm.log"; done
