"""Language conditioning (GRIF): the task said in words.

Training reads each episode's `instruction` metadata; only a `language_fraction` of the episodes keep it
(GRIF's semi-supervised setting), which ones fixed by the seed. On the graph the text arrives latched on
/task/instruction (an empty string clears it). `robot-stack eval --instruction TEXT` fills {object}
{color} {target} from each episode's task parameters, so evaluation text can differ from training text.
"""
from __future__ import annotations

import numpy as np
import torch

from robot_stack.policies.conditioning import register_kind
from robot_stack.policies.conditioning.base import ConditioningKind, EpisodeContext, TaskTopic, check_text


def _string_type():
    from std_msgs.msg import String
    return String


def fill_instruction(text: str, params: dict) -> str:
    """Fill {object} {color} {target} from the episode's task parameters."""
    try:
        return text.format(**{k: params.get(k, "") for k in ("object", "color", "target")})
    except (KeyError, IndexError) as exc:
        raise ValueError(f"instruction {text!r}: unknown placeholder {exc}; use {{object}}, {{color}} or {{target}}") \
            from exc


@register_kind
class Instruction(ConditioningKind):
    name = "instruction"
    fields = {"instruction": "text"}
    batch_keys = ("instruction", "labelled")

    def prepare(self, batches, metadata):
        batches.instructions = [str(m.get("instruction", "")) for m in metadata]
        n_lab = int(round(batches.language_fraction * len(metadata)))
        labelled = np.zeros(len(metadata), bool)
        labelled[np.random.default_rng(batches.seed + 7).permutation(len(metadata))[:n_lab]] = True
        batches.labelled = labelled & np.array([bool(s) for s in batches.instructions], dtype=bool)
        return {"labelled_episodes": int(batches.labelled.sum())}

    def batch(self, batches, samples, rng):
        eps = [s.episode for s in samples]
        return {"instruction": [batches.instructions[i] if batches.labelled[i] else "" for i in eps],
                "labelled": torch.from_numpy(batches.labelled[eps])}

    def topics(self):
        def parse(msg, limits):
            return {"instruction": check_text(msg.data, "instruction", limits) or None}
        return [TaskTopic("task/instruction", _string_type, parse=parse,
                          build=lambda task, stamp: _string_type()(data=task.instruction or ""))]

    def add_arguments(self, parser):
        parser.add_argument("--instruction",
                            help="instruction: condition on this text; {object} {color} {target} are filled per episode")

    def given(self, options):
        return bool(options.get("instruction"))

    def check_options(self, options):
        if not options.get("instruction"):
            raise ValueError("instruction conditioning needs --instruction TEXT")
        fill_instruction(options["instruction"], {})

    def episode_fields(self, ctx: EpisodeContext) -> dict:
        return {"instruction": fill_instruction(ctx.options["instruction"], ctx.params)}

    def example(self, image_size):
        return {"instruction": "put the red block in the bowl"}
