#!/usr/bin/env bash
# SwitchVLA (issue 31) on ordinary pick_place demonstrations, one per block of each scene (no switch is ever
# demonstrated: policies/switchvla/demos.py). Resumable: the demos are collected once (skipped when complete) and
# training resumes from out/train_state.*. SWITCH_PROB=0 trains the forward-only baseline (OUT names its run).
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl
RS=".venv/bin/robot-stack"
SCENES=${SCENES:-150}
OUT=${OUT:-outputs/train/switchvla_v3}
# INIT_FROM=DIR starts from a checkpoint's weights where names and shapes match (a fresh run only)
init=()
[ -n "${INIT_FROM:-}" ] && init=(init_from="$INIT_FROM")
data=outputs/data/switchvla_pp.zarr
mkdir -p outputs/data
if [ ! -f "$data.done" ]; then
  nice -n 19 .venv/bin/python -m robot_stack.policies.switchvla.demos --episodes "$SCENES" --seed 1000 --out "$data" --overwrite
  touch "$data.done"
fi
nice -n 19 $RS train policy=switchvla task=pick_place data="$data" out="$OUT" policy.switch_prob=${SWITCH_PROB:-0.5} "${init[@]}" \
  steps=${STEPS:-30000} save_every=500 keep_every=2500 threads=${THREADS:-1} lr_schedule=cosine lr_warmup=500
