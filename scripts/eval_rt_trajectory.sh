#!/usr/bin/env bash
# RT-Trajectory's results rows (issue 30) for one checkpoint: the unseen tasks with the expert's hindsight sketch and
# with waypoint-plan sketches (robot_stack/waypoint_plans.py, never the expert), and two training tasks.
#   bash scripts/eval_rt_trajectory.sh CHECKPOINT EPISODES SEED [ROWS...]
# rows: TASK:expert or TASK:waypoints (default: the four unseen tasks both ways, pick_place:expert, push:expert).
# Waypoint plans are written once per task and seed range under outputs/waypoints/<task>/ (seed_N.json).
# Results: outputs/eval/rtt/<checkpoint name>/<task>_<sketch>.json. Evaluation seeds are 0-99; choose
# checkpoints on 200+.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl
RS=.venv/bin/robot-stack
ckpt=$1; episodes=$2; seed=$3; shift 3
rows=("$@")
if [ ${#rows[@]} -eq 0 ]; then
  for t in place_at out_of_bowl arc_over_bowl push_around; do rows+=("$t:expert" "$t:waypoints"); done
  rows+=(pick_place:expert push:expert)
fi
name=$(basename "$(dirname "$ckpt")")_$(basename "$ckpt")
out=outputs/eval/rtt/$name
mkdir -p "$out"
for row in "${rows[@]}"; do
  task=${row%%:*}; how=${row##*:}
  if [ "$how" = waypoints ]; then
    plans=outputs/waypoints/$task
    [ -f "$plans/seed_$((seed + episodes - 1)).json" ] && [ -f "$plans/seed_$seed.json" ] || \
      $RS sketch waypoints --task "$task" --seed "$seed" --episodes "$episodes" --out "$plans"
    sketch=(--sketch-waypoints "$plans")
  else
    sketch=(--sketch expert)
  fi
  $RS eval --checkpoint "$ckpt" --task "$task" --episodes "$episodes" --seed "$seed" --backend sim \
    --workers ${WORKERS:-1} "${sketch[@]}" --json "$out/${task}_$how.json" | grep -E "^[a-z_]+ on "
done
