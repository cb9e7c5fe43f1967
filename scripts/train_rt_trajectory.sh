#!/usr/bin/env bash
# RT-Trajectory 2.5D (issue 30) on the seven training tasks' hindsight sketches. Resumable: each store is
# collected once (skipped when complete), the merge once, and training resumes from out/train_state.*.
# SKETCH_MODE=2d trains the 2D variant (outputs/train/rtt_2d); STEPS sets the run's length (keep it across resumes:
# the cosine schedule spans it).
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl
RS=".venv/bin/robot-stack"
EPISODES=${EPISODES:-150}
mkdir -p outputs/data
stores=()
seed=1000
for task in reach push pick_place stack lift drawer_open drawer_close; do
  out=outputs/data/rtt_${task}.zarr
  if ! $RS data info "$out" >/dev/null 2>&1 || [ ! -f "$out.done" ]; then
    nice -n 19 $RS sim collect --task "$task" --episodes "$EPISODES" --seed "$seed" --workers ${WORKERS:-1} \
      --position-noise 0.01 --image-size 128 --out "$out" --overwrite --no-progress
    touch "$out.done"
  fi
  stores+=("$out")
  seed=$((seed + 1000))
done
if [ ! -f outputs/data/rtt_train.zarr.done ]; then
  # task_state differs in size between tasks; the sketch policy does not read it
  $RS data merge outputs/data/rtt_train.zarr "${stores[@]}" --overwrite --drop task_state
  touch outputs/data/rtt_train.zarr.done
fi
mode=${SKETCH_MODE:-2.5d}
nice -n 19 $RS train policy=rt_trajectory task=all data=outputs/data/rtt_train.zarr out=outputs/train/rtt_${mode/./_} \
  policy.sketch_mode=$mode \
  steps=${STEPS:-30000} save_every=500 keep_every=2500 threads=${THREADS:-1} lr_schedule=cosine lr_warmup=500
