"""Task switching (SwitchVLA): the instruction being carried out, and the one it replaced mid-episode.

A switch task is an instruction plus, once the instruction changed while the arm moved, the previous one.
Previous == current is no switch. On the graph nothing new is published: a new text on /task/instruction (the
instruction kind's topic) while an episode runs makes the replaced text `previous_instruction` (`on_update`),
and a new episode starts with previous == current (`on_episode_start`). Training batches come from ordinary
demonstrations through the sample builder (policies/switchvla/samples.py): forward, rollback and advance samples,
their action targets replacing the window's own. `robot-stack eval --instruction A --switch-to B --switch-at
pre_contact|in_contact|post_contact|STEP` switches each episode once; `{other_object}` / `{other_color}` name
another block of the same scene, and success is then the new instruction's predicate (after an in-contact switch,
with the first object released and outside the target; after a post-contact switch, the new block may rest on
the first one in the bowl).
"""
from __future__ import annotations

import numpy as np
import torch

from robot_stack.policies.conditioning import register_kind
from robot_stack.policies.conditioning.base import ConditioningKind, EpisodeContext

SWITCH_POINTS = ("pre_contact", "in_contact", "post_contact")
PRE_CONTACT_DELAY = 5          # steps after the episode starts moving
IN_CONTACT_DELAY = 10          # steps after the gripper first closes on the object
EXTRA_STEPS = 150              # a switched episode may take this many steps more than the task's limit


def other_color(params: dict, seed: int) -> str:
    """Another block of the same scene, the same one for a seed on every backend."""
    from robot_stack.sim.scene import BLOCKS
    others = [c for c in BLOCKS if c != params.get("color")]
    return others[seed % len(others)]


def fill_switch_text(text: str, params: dict, seed: int) -> str:
    """{object} {color} {target} from the episode, {other_object} {other_color} for another block of the scene."""
    other = other_color(params, seed)
    values = {k: params.get(k, "") for k in ("object", "color", "target")}
    values.update(other_object=f"{other} block", other_color=other)
    try:
        return text.format(**values)
    except (KeyError, IndexError) as exc:
        raise ValueError(f"instruction {text!r}: unknown placeholder {exc}; use {{object}} {{color}} {{target}} "
                         "{other_object} {other_color}") from exc


def switch_point(value: str) -> str | int:
    if value in SWITCH_POINTS:
        return value
    try:
        step = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--switch-at must be one of {', '.join(SWITCH_POINTS)} or a step number, got {value!r}") \
            from None
    if step < 1:
        raise ValueError(f"--switch-at step must be at least 1, got {step}")
    return step


def switched_params(params: dict, switch_text: str, seed: int) -> dict:
    """The task parameters the new instruction is about: another block where it names {other_...}."""
    if "{other_" not in switch_text:
        return dict(params)
    color = other_color(params, seed)
    return {**params, "color": color, "object": f"{color} block"}


@register_kind
class Switch(ConditioningKind):
    name = "switch"
    fields = {"instruction": "text", "previous_instruction": "text"}    # both set: previous == instruction is no switch
    batch_keys = ("instruction", "previous_instruction")
    baseline_for = ("instruction",)      # an instruction policy (GRIF) given the new text at the switch

    # --- training ------------------------------------------------------------------------------
    def prepare(self, batches, metadata):
        from robot_stack.contact_phases import episode_phases
        from robot_stack.policies.switchvla.samples import Demo, SwitchSampleBuilder, contact_at_ticks

        demos = []
        for i, meta in enumerate(metadata):
            if meta.get("switch") or meta.get("switch_to"):
                raise ValueError(f"episode {i} records a switch; SwitchVLA trains on ordinary demonstrations only")
            ticks = np.arange(batches.ds.last_tick(i) + 1)
            widths = batches.ds.rows_at("gripper", i, ticks)[:, 0]
            grip = batches.ds.rows_at("action_gripper", i, ticks)[:, 0]
            phases = episode_phases(meta, widths, grip)
            demos.append(Demo(instruction=str(meta.get("instruction", "")),
                              layout=str(meta.get("layout", f"{meta.get('task')}/seed{meta.get('seed')}/{i}")),
                              ee_pose=batches.ds.rows_at("ee_pose", i, ticks),
                              action_pose=batches.ds.rows_at("action_pose", i, ticks), action_gripper=grip,
                              contact=contact_at_ticks(phases, len(ticks))))
        batches.switch_texts = sorted({d.instruction for d in demos})
        settings = (batches.spec.conditioning or {}).get("switch", {})
        batches.switch_builder = SwitchSampleBuilder(demos, batches.spec.action_horizon,
                                                     float(settings.get("switch_prob", 0.5)))
        paired = sum(bool(s) for s in batches.switch_builder.siblings)
        return {"switch_episodes_with_siblings": paired}

    def batch(self, batches, samples, rng):
        from robot_stack.policies import actions as act_space

        builder = batches.switch_builder
        drawn = [builder.draw(s.episode, s.t, rng) for s in samples]
        ee = np.stack([builder.demos[s.episode].ee_pose[s.t] for s in samples])
        poses = np.stack([builder.targets(d)[0] for d in drawn])
        grip = np.stack([d.gripper for d in drawn])[..., None]
        acts = act_space.encode(ee, poses, grip)
        acts = act_space.normalise(acts, batches.stats["action"], batches.spec.action_norm)
        return {"action": torch.from_numpy(acts),
                "action_is_pad": torch.from_numpy(np.stack([d.is_pad for d in drawn])),
                "instruction": [d.current for d in drawn], "previous_instruction": [d.previous for d in drawn],
                "mode": torch.tensor([d.mode for d in drawn]),
                "contact_prev": torch.tensor([d.contact_prev for d in drawn], dtype=torch.float32),
                "contact": torch.tensor([d.contact for d in drawn], dtype=torch.long)}

    def stats(self, batches):
        from robot_stack.policies.grif import language
        from robot_stack.policies.switchvla.policy import text_stats
        return {"text": text_stats(language.embed(batches.switch_texts).numpy())}

    # --- the graph ------------------------------------------------------------------------------
    def on_update(self, fields, update):
        if "instruction" not in update:
            return {}
        old, new = fields.get("instruction"), update["instruction"]
        if not new:
            return {"previous_instruction": None}
        if old and new != old:
            return {"previous_instruction": old}
        if not old and "previous_instruction" in fields:
            return {"previous_instruction": new}        # after a cleared instruction: a fresh start, no switch
        return {}                       # the first instruction: the episode's start sets previous == current

    def on_episode_start(self, fields, images, goal_camera):
        return {"previous_instruction": fields.get("instruction")}     # a new episode starts with no switch

    # --- robot-stack eval -----------------------------------------------------------------------
    def add_arguments(self, parser):
        parser.add_argument("--switch-to", metavar="TEXT",
                            help="switch: change the instruction to this text mid-episode ({object} {color} {target} "
                                 "{other_object} {other_color} filled per episode)")
        parser.add_argument("--switch-at", metavar="WHEN",
                            help="switch: pre_contact (5 steps after the start), in_contact (10 steps after the "
                                 "gripper first closes on the object), post_contact (once the first task succeeds) "
                                 "or a step number")

    def given(self, options):
        return bool(options.get("switch_to"))

    def check_options(self, options):
        if not options.get("instruction"):
            raise ValueError("switch conditioning needs --instruction TEXT (and --switch-to TEXT --switch-at WHEN)")
        fill_switch_text(options["instruction"], {}, 0)
        if bool(options.get("switch_to")) != bool(options.get("switch_at")):
            raise ValueError("--switch-to and --switch-at go together")
        if options.get("switch_to"):
            fill_switch_text(options["switch_to"], {}, 0)
            switch_point(options["switch_at"])

    def episode_fields(self, ctx: EpisodeContext) -> dict:
        ctx.cache[("switch", ctx.seed)] = {"done": False, "contact_step": None, "start": None}
        text = fill_switch_text(ctx.options["instruction"], ctx.params, ctx.seed)
        return {"instruction": text, "previous_instruction": text}

    def during_episode(self, ctx, step, info):
        state = ctx.cache.get(("switch", ctx.seed))
        mode = (info.get("status") or {}).get("switch_mode")
        if state is not None and mode:                  # the policy's own mode, step by step, for the record
            runs = state.setdefault("modes", [])
            if runs and runs[-1][0] == mode:
                runs[-1][1] += 1
            else:
                runs.append([mode, 1])
        if state is None or state["done"] or not ctx.options.get("switch_to"):
            return None
        when = switch_point(ctx.options["switch_at"])
        if state["contact_step"] is None and info.get("contact_phase") == "in_contact":
            state["contact_step"] = step
        due = (step >= when if isinstance(when, int) else
               step >= PRE_CONTACT_DELAY if when == "pre_contact" else
               state["contact_step"] is not None and step >= state["contact_step"] + IN_CONTACT_DELAY
               if when == "in_contact" else bool(info.get("success")))
        if not due:
            return None
        state.update(done=True, switched_at=step, phase=info.get("contact_phase"))
        before = fill_switch_text(ctx.options["instruction"], ctx.params, ctx.seed)
        state["to"] = fill_switch_text(ctx.options["switch_to"], ctx.params, ctx.seed)
        return {"instruction": state["to"], "previous_instruction": before}

    def extra_steps(self, ctx) -> int:
        return EXTRA_STEPS if ctx.options.get("switch_to") else 0

    def success(self, ctx, scene, task) -> bool | None:
        """After the switch, the new instruction's predicate; before it, not yet (the first task's success is where
        a post-contact switch happens, not the end). Without --switch-to: the task's own predicate."""
        if not ctx.options.get("switch_to"):
            return None
        state = ctx.cache.get(("switch", ctx.seed), {})
        if not state.get("done"):
            return False
        params = switched_params(ctx.params, ctx.options["switch_to"], ctx.seed)
        ok = _predicate(task, params, scene) or (state.get("phase") == "post_contact" and _on_first(task, ctx.params,
                                                                                                    params, scene))
        if ok and state.get("phase") == "in_contact" and params.get("color") != ctx.params.get("color"):
            first = _released_outside(task, ctx.params, scene)        # the rolled-back object let go, not delivered
            ok = first
        return ok

    def record(self, ctx) -> dict:
        state = ctx.cache.get(("switch", ctx.seed), {})
        modes = " > ".join(f"{m} x{n}" for m, n in state.get("modes", [])) or None
        return {"switched_at": state.get("switched_at"), "switch_phase": state.get("phase"),
                "switched_to": state.get("to"), "modes": modes}

    def describe(self, record):
        outcome = "success" if record["success"] else "failed"
        modes = f"; the policy's modes, step by step: {record['modes']}" if record.get("modes") else ""
        if record.get("switched_at") is None:
            return f"{record['instruction']!r}, no switch happened{modes}; {outcome}"
        return (f"{record['instruction']!r} -> {record['switched_to']!r} at step {record['switched_at']} "
                f"({record['switch_phase']}){modes}; {outcome}")

    def example(self, image_size):
        return {"instruction": "put the green block in the bowl",
                "previous_instruction": "put the red block in the bowl"}


def _with_params(task, params: dict):
    """A fresh task object of the same kind whose predicate is about `params` (the episode's own stays as it is)."""
    from robot_stack.sim.tasks import make_task
    from robot_stack.sim.tasks.base import TaskParams

    other = make_task(task.name)
    known = {"object", "color", "target"}
    other.params = TaskParams(**{k: params.get(k) for k in known},
                              extra={k: v for k, v in params.items() if k not in known})
    return other


def _predicate(task, params: dict, scene) -> bool:
    return bool(_with_params(task, params).success(scene))


def _on_first(task, first: dict, second: dict, scene) -> bool:
    """The new block in the bowl on top of the first one, delivered before a post-contact switch: pick_place's
    predicate wants a block near the bowl's floor, which the first block now covers."""
    from robot_stack.sim.scene import BLOCK_HALF
    if first.get("color") == second.get("color") or not _predicate(task, first, scene):
        return False
    new = _with_params(task, second)
    off = new._offset(scene)
    from robot_stack.sim.tasks.base import BOWL_RADIUS
    released = not scene.touching(scene.gripper_geoms, new.manipulated_geoms(scene))
    return bool(released and np.linalg.norm(off[:2]) < BOWL_RADIUS - 0.01 and off[2] < 0.05 + 2 * BLOCK_HALF)


def _released_outside(task, params: dict, scene) -> bool:
    first = _with_params(task, params)
    released = not scene.touching(scene.gripper_geoms, first.manipulated_geoms(scene))
    return bool(released and not first.success(scene))
