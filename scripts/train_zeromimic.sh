#!/usr/bin/env bash
# ZeroMimic (issue 32) from human clips only: per skill, clips of the floating hand filmed by a moving head
# camera, SfM + the wrist detector's error model, the skill policy and the affordance net. Resumable: each step
# is skipped once done, and training resumes from its run folder. Model sizes are CPU-sized (docs/design.md,
# "ZeroMimic"). SKILLS, CLIPS and STEPS may be set from the environment. Then, per skill and arm:
#   robot-stack human eval --checkpoint outputs/train/zeromimic_SKILL/checkpoint \
#     --affordance outputs/train/zeromimic_SKILL_affordance --task SKILL --robot panda|ur5e --episodes 100 --seed 0
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl
RS=".venv/bin/robot-stack"
CLIPS=${CLIPS:-60}
STEPS=${STEPS:-5000}
mkdir -p outputs/data outputs/train
seed=100000
for skill in ${SKILLS:-drawer_open drawer_close pick_place}; do
  clips=outputs/data/human_${skill}.zarr
  if [ ! -f "$clips.done" ]; then
    rm -rf "$clips" "${clips%.zarr}_truth.zarr" "${clips%.zarr}_wrist.zarr"
    nice -n 19 $RS human collect --skill "$skill" --clips "$CLIPS" --seed "$seed" --out "$clips" --no-progress
    touch "$clips.done"
  fi
  if [ ! -f "$clips.perceived" ]; then
    nice -n 19 $RS human perceive "$clips" --no-progress
    touch "$clips.perceived"
  fi
  nice -n 19 $RS human train --skill "$skill" --clips "$clips" --out "outputs/train/zeromimic_${skill}" \
    --steps "$STEPS" --threads ${THREADS:-1} --no-progress \
    "image_hw=[48, 64]" resnet_width=8 hidden=64 enc_layers=2 dec_layers=2
  if [ ! -f "outputs/train/zeromimic_${skill}_affordance/config.json" ]; then
    nice -n 19 $RS human train-affordance --clips "$clips" --out "outputs/train/zeromimic_${skill}_affordance"
  fi
  seed=$((seed + 10000))
done
