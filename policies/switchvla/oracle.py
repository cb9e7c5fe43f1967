"""A check of the sample recipe, not a policy: do the builder's rollback and advance targets, executed in the
twin, complete a switch? (If they cannot, no network trained on them can.)

For a seed, the expert's demonstrations of block A and of another block B of the same scene are recorded
(without noise). The twin then replays A's expert up to the switch point; from there each step executes the
first target of the sample the builder gives for the live state: its nearest tick in the demonstration the
mode reads from (rollback: A's contact segment; advance: A's non-contact ticks, targets from B's approach),
mode by the rule from the twin's contact, as at run time the policy's estimate would give it; once B's object
is in hand, B's own actions (forward). Success as `robot-stack eval` judges a switch: B in the bowl and, after
an in-contact switch, A released outside it.

    python -m robot_stack.policies.switchvla.oracle --seeds 2000 2019 --switch-at in_contact
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from robot_stack.policies.switchvla.demos import RetargetedEnv
from robot_stack.policies.switchvla.samples import ADVANCE, FORWARD, ROLLBACK, Demo, SwitchSampleBuilder, \
    contact_at_ticks, mode_of

IN_CONTACT_DELAY, PRE_CONTACT_DELAY = 10, 5
DEBUG = False


def _demo(env: RetargetedEnv, seed: int, color: str) -> Demo:
    from robot_stack.sim.rollout import expert_steps
    env.color = color
    ee, actions, phases = [], [], []
    for obs, action, info in expert_steps(env, seed):
        ee.append(obs["ee_pose"])
        if action is not None:
            actions.append(action)
            phases.append(info["contact_phase"])
    actions.append(np.concatenate((ee[-1], actions[-1][7:8])))
    actions = np.array(actions)
    return Demo(env.instruction, f"seed{seed}", np.array(ee), actions[:, :7], actions[:, 7],
                contact_at_ticks(phases, len(ee)))


def _nearest(demo: Demo, ticks: np.ndarray, pos: np.ndarray) -> int:
    return int(ticks[np.argmin(np.linalg.norm(demo.ee_pose[ticks, :3] - pos, axis=1))])


def run(seed: int, switch_at: str, robot: str = "panda", max_steps: int = 300, execute: int = 2) -> dict:
    """`execute`: chunk steps played before the next sample is drawn (the policies' execute_steps)."""
    from robot_stack.policies.conditioning.switch import _on_first, _predicate, _released_outside, other_color

    env = RetargetedEnv("pick_place", robot=robot, cameras=())
    _, info = env.reset(seed=seed)
    params = info["task_params"]
    color_a, color_b = params["color"], other_color(params, seed)
    a, b = _demo(env, seed, color_a), _demo(env, seed, color_b)
    builder = SwitchSampleBuilder([a, b], horizon=8)
    env.color = color_a
    env.reset(seed=seed)
    expert = env.task.expert(env.scene, np.random.default_rng(seed + 1), env.policy_dt)
    previous, current, released, first_contact, switched_at, modes = a.instruction, a.instruction, True, None, None, []
    touching = lambda color: env.scene.touching(env.scene.gripper_geoms, env.scene.body_geoms(f"{color}_block"))  # noqa
    params_b = {**params, "color": color_b, "object": f"{color_b} block"}
    ok, plan, follow = False, [], None
    for step in range(1, max_steps + 1):
        contact = touching(color_a) or touching(color_b)
        if switched_at is None:
            action = expert.act(env.scene)
        elif plan and len(plan) > 0:
            action = plan.pop(0)
        else:
            pos = env.scene.ee_pose()[0]
            mode = mode_of(previous, current, contact)
            if mode != FORWARD and not contact:
                released = True
            if mode != FORWARD and contact and released:
                previous = current                       # B's object in hand: the switch is complete
                mode = FORWARD
            modes.append(mode)
            if mode == ROLLBACK:
                t = _nearest(a, np.flatnonzero(a.contact), pos)
                s = builder.rollback(0, t, 1, True)
            elif follow is None:
                t = _nearest(a, np.flatnonzero(~a.contact), pos)
                s = builder.advance(0, t, 1, False)
                if s.poses is not None and np.allclose(s.poses[0], b.action_pose[s.ticks[0]]):
                    follow = int(s.ticks[0])        # joined B's approach: from here on B's own actions in order
            if follow is not None:                  # the demo's clock, which a nearest-tick lookup loses at waits
                t = follow
                s = builder.forward(1, t, contact, contact)
                follow += execute
            poses, grip = builder.targets(s)
            plan = [np.concatenate((p, [g])) for p, g in zip(poses[:execute], grip[:execute])]
            action = plan.pop(0)
            if DEBUG:
                print(step, mode, t, np.round(pos, 3), np.round(poses[0, :3], 3), grip[0], contact)
        env.step(action)
        if first_contact is None and touching(color_a):
            first_contact = step
        if switched_at is None:
            due = (step >= PRE_CONTACT_DELAY if switch_at == "pre_contact" else
                   first_contact is not None and step >= first_contact + IN_CONTACT_DELAY if switch_at == "in_contact"
                   else env.task.success(env.scene))
            if due:
                switched_at, current, plan = step, b.instruction, []
                released = not (touching(color_a) or touching(color_b))
            continue
        ok = _predicate(env.task, params_b, env.scene) or (switch_at == "post_contact" and
                                                         _on_first(env.task, params, params_b, env.scene))
        if ok and switch_at == "in_contact":
            ok = _released_outside(env.task, params, env.scene)
        if ok:
            break
    env.close()
    return {"seed": seed, "success": bool(ok), "steps": step, "switched_at": switched_at,
            "rollback_steps": modes.count(ROLLBACK), "advance_steps": modes.count(ADVANCE)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs=2, default=[2000, 2019], metavar=("FIRST", "LAST"))
    ap.add_argument("--switch-at", choices=("pre_contact", "in_contact", "post_contact"), default="in_contact")
    a = ap.parse_args(argv)
    rows = [run(s, a.switch_at) for s in range(a.seeds[0], a.seeds[1] + 1)]
    for r in rows:
        print(json.dumps(r))
    n = sum(r["success"] for r in rows)
    print(f"oracle switch {a.switch_at}: {n}/{len(rows)} succeeded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
