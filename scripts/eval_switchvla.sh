#!/usr/bin/env bash
# SwitchVLA's results rows (issue 31) for one checkpoint: pick_place with no switch, and a switch to another block
# pre-contact, in contact and post-contact, on the same seeds and phrasings for every policy (SwitchVLA, its
# forward-only baseline, GRIF). The phrasings are in no training template (robot_stack/sim/tasks/pick_place.py).
#   bash scripts/eval_switchvla.sh CHECKPOINT EPISODES SEED [ROWS...]     rows: none pre_contact in_contact post_contact
# Results: outputs/eval/switch/<checkpoint name>/<row>.json. Evaluation seeds are 0-99; choose checkpoints on 200+.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl
ckpt=$1; episodes=$2; seed=$3; shift 3
rows=("$@"); [ ${#rows[@]} -eq 0 ] && rows=(none pre_contact in_contact post_contact)
FIRST="grab the {object} and let it go over the {target}"
SECOND="wait, take the {other_object} to the {target} instead"
name=$(basename "$(dirname "$ckpt")")_$(basename "$ckpt")
out=outputs/eval/switch/$name
mkdir -p "$out"
for row in "${rows[@]}"; do
  switch=(); [ "$row" != none ] && switch=(--switch-to "$SECOND" --switch-at "$row")
  .venv/bin/robot-stack eval --checkpoint "$ckpt" --task pick_place --episodes "$episodes" --seed "$seed" \
    --backend sim --workers ${WORKERS:-1} --instruction "$FIRST" "${switch[@]}" --json "$out/$row.json" | grep -E "^[a-z_]+ on pick_place"
done
