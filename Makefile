# The two commands of the README: `make demo` (the main job) and `make test`.
# Each sets itself up on a fresh machine first (scripts/setup.sh).
VENV := .venv
export MUJOCO_GL ?= egl

.PHONY: setup demo test bench
setup: $(VENV)/.ready

$(VENV)/.ready: setup.py setup.cfg constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup
	rm -rf outputs/demo/store
	$(VENV)/bin/robot-stack demo --robot panda --task pick_place --episodes 2 --video outputs/demo --json outputs/demo/results.json --store outputs/demo/store
	$(VENV)/bin/robot-stack eval --checkpoint checkpoints/beso_pick_place --task pick_place --episodes 3 --seed 0 --backend ros --video outputs/demo --json outputs/demo/eval_beso.json
	$(VENV)/bin/robot-stack eval --checkpoint checkpoints/grif_pick_place --task pick_place --episodes 3 --seed 0 --backend ros --instruction "grab the {object} and let it go over the {target}" --video outputs/demo/grif --json outputs/demo/eval_grif.json

test: setup
	$(VENV)/bin/python -m pytest -q tests

bench: setup
	$(VENV)/bin/robot-stack bench sim
	$(VENV)/bin/robot-stack bench control
	$(VENV)/bin/robot-stack bench transport
	$(VENV)/bin/robot-stack bench policy
