"""GRIF: the faithfulness points of METHODS.md plus the Policy interface contract, on tiny configs."""
import math
import tempfile
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
import torch

from robot_stack.policies import actions
from robot_stack.policies.base import load_policy
from robot_stack.policies.errors import BadObservation, CheckpointMismatch, MissingConditioning
from robot_stack.policies.grif import language
from robot_stack.policies.grif.policy import GRIFPolicy
from robot_stack.policies.grif.losses import alignment_loss
from robot_stack.types import ActionChunk, Observation, Task

SIZE = 32
TINY = GRIFPolicy.Config(image_size=SIZE, action_horizon=3, task_dim=16, channels=(8, 16, 16),
                         task_channels=(8, 16, 16), film_hidden=32, head_hidden=32, lang_hidden=32)
POSE = np.array([0.4, 0.0, 0.3, 0.0, 0.0, 0.0, 1.0])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a loaded 2-core machine OpenMP's
    spin-waiting made the 200-step overfit test 50x slower; one thread keeps the file fast."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def stats():
    rng = np.random.default_rng(1)
    return {"action": actions.compute_stats(rng.standard_normal((100, 7))),
            "proprio": actions.compute_stats(rng.standard_normal((100, 8)))}


def make_policy(**overrides) -> GRIFPolicy:
    torch.manual_seed(0)
    return GRIFPolicy(replace(TINY, **overrides), stats())


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def obs(seed: int = 0, size: int = SIZE) -> Observation:
    frame = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Observation(stamp=1.0, images={"front": frame}, ee_pose=POSE, gripper=0.04)


def make_batch(labelled, instructions, ta=3, seed=0, final=True) -> dict:
    rng = np.random.default_rng(seed)
    b = len(labelled)
    ims = lambda *shape: rng.integers(0, 256, (*shape, SIZE, SIZE, 3), dtype=np.uint8)  # noqa: E731
    batch = {"images": {"front": ims(b, 1)}, "action": rng.standard_normal((b, ta, 7)).astype(np.float32),
             "action_is_pad": np.zeros((b, ta), bool), "goal_image": ims(b), "start_image": ims(b),
             "instruction": list(instructions), "labelled": np.asarray(labelled, bool)}
    if final:
        batch["final_goal_image"] = ims(b)
    return batch


def state_keys_ok(policy) -> bool:
    return all(k.split(".")[0] in {"task_encoder", "language_projection", "policy", "log_tau"}
               for k in policy.state_dict())


# --- 1, 2: the encoders ---------------------------------------------------------------------------
def test_image_task_encoder_depends_on_start_and_goal():
    p = make_policy().eval()
    g = image(2)
    z1, z2 = p.embed_images(image(0), g), p.embed_images(image(1), g)
    assert z1.shape == (1, TINY.task_dim)
    assert torch.allclose(z1.norm(dim=-1), torch.ones(1), atol=1e-5)
    assert not torch.allclose(z1, z2, atol=1e-4), "f(s0, g) must change when s0 changes with g fixed"
    assert not torch.allclose(z1, p.embed_images(image(0), image(3)), atol=1e-4)
    assert p.task_encoder.trunk.stem[0].in_channels == 6      # start and goal stacked channel-wise


def test_language_encoder_frozen_cached_and_projected():
    raw = language.embed(["pick up the red block", "open the drawer", "pick up the red block"])
    assert raw.shape == (3, language.TEXT_DIM) and torch.equal(raw[0], raw[2])
    assert language._model is not None and not any(q.requires_grad for q in language._model.parameters())
    p = make_policy()
    z = p.embed_instructions(["pick up the red block", "open the drawer"])
    assert z.shape == (2, TINY.task_dim)
    assert torch.allclose(z.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(z[0], z[1])
    assert state_keys_ok(p)     # the encoder is not part of the module tree


# --- 3: the alignment loss --------------------------------------------------------------------------
def test_alignment_loss_matches_hand_computation():
    rng = np.random.default_rng(0)
    zi, zl = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    zi /= np.linalg.norm(zi, axis=1, keepdims=True)
    zl /= np.linalg.norm(zl, axis=1, keepdims=True)
    texts, tau = ["put the cup away", "open drawer", "put the cup away"], 0.5
    # independent reference: for each anchor, average -log p over its positives, both directions
    sims = [[float(sum(zi[i, k] * zl[j, k] for k in range(4))) / tau for j in range(3)] for i in range(3)]
    expected = 0.0
    for direction in ("image_to_language", "language_to_image"):
        total = 0.0
        for a in range(3):
            row = [sims[a][b] if direction == "image_to_language" else sims[b][a] for b in range(3)]
            log_norm = math.log(sum(math.exp(v) for v in row))
            positives = [b for b in range(3) if texts[b] == texts[a]]
            total += sum(-(row[b] - log_norm) for b in positives) / len(positives)
        expected += total / 3 / 2
    got = alignment_loss(torch.tensor(zi), torch.tensor(zl), texts, torch.tensor(tau))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_alignment_loss_reduces_to_clip_with_distinct_instructions():
    zi = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    zl = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    logits, target = zi @ zl.T / 0.07, torch.arange(5)
    clip = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    got = alignment_loss(zi, zl, [f"task {i}" for i in range(5)], torch.tensor(0.07))
    assert got.item() == pytest.approx(clip.item(), rel=1e-5)


def test_temperature_learned_in_log_space_and_clipped():
    p = make_policy()
    assert p.tau().item() == pytest.approx(0.07, rel=1e-5)
    with torch.no_grad():
        p.log_tau.fill_(math.log(1e-4))
    assert p.tau().item() == pytest.approx(TINY.tau_min)
    with torch.no_grad():
        p.log_tau.fill_(math.log(50.0))
    assert p.tau().item() == pytest.approx(TINY.tau_max)


# --- 4: the training loss and its masking -------------------------------------------------------------
def test_no_labelled_rows_no_alignment_and_no_language_gradient():
    p = make_policy().train()
    batch = make_batch([False] * 4, ["stack blocks", "", "open drawer", ""])   # texts without the label are ignored
    loss, m = p.loss(batch)
    assert m["align"] == 0.0 and m["bc_language"] == 0.0 and m["n_labelled"] == 0
    loss.backward()
    for q in p.language_projection.parameters():
        assert q.grad is None or torch.count_nonzero(q.grad) == 0
    assert torch.count_nonzero(p.policy.views[0].film[-1].weight.grad)    # the image-task path still trains


def test_unlabelled_rows_do_not_reach_language_losses():
    labelled = [True, False, True, True, False]
    texts = ["stack blocks", "", "open drawer", "stack blocks", ""]
    batch = make_batch(labelled, texts)
    p = make_policy().eval()                 # eval: no random shift, so the two passes compare exactly
    loss, m = p.loss(batch)
    loss.backward()
    grads = [q.grad.clone() for q in p.language_projection.parameters()]
    assert m["n_labelled"] == 3

    # the same labelled rows alone give the same language BC and alignment
    keep = [0, 2, 3]
    sub = {k: (v[keep] if isinstance(v, np.ndarray) else [v[i] for i in keep]) for k, v in batch.items()
           if k not in ("images", "instruction")}
    sub["images"] = {"front": batch["images"]["front"][keep]}
    sub["instruction"] = [texts[i] for i in keep]
    _, m_sub = p.loss(sub)
    assert m_sub["bc_language"] == pytest.approx(m["bc_language"], rel=1e-5)
    assert m_sub["align"] == pytest.approx(m["align"], rel=1e-5)

    # changing the unlabelled rows' texts or images leaves every language gradient unchanged
    other = dict(batch, instruction=["stack blocks", "dance", "open drawer", "stack blocks", "open drawer"])
    other["images"] = {"front": batch["images"]["front"].copy()}
    other["images"]["front"][[1, 4]] = 0
    p.zero_grad()
    other_loss, m_other = p.loss(other)
    other_loss.backward()
    assert m_other["align"] == pytest.approx(m["align"], rel=1e-6)
    assert m_other["bc_language"] == pytest.approx(m["bc_language"], rel=1e-6)
    for g0, q in zip(grads, p.language_projection.parameters()):
        assert torch.allclose(g0, q.grad, atol=1e-7)
    assert batch["labelled"].tolist() == labelled           # the batch is not modified


def test_labelled_rows_use_the_final_frame_as_goal():
    labelled, texts = [True, False, True], ["open drawer", "", "stack blocks"]
    batch = make_batch(labelled, texts)
    p = make_policy().eval()
    _, m = p.loss(batch)
    changed = dict(batch, goal_image=batch["goal_image"].copy())
    changed["goal_image"][[0, 2]] = 0                       # relabelled goals of labelled rows are not used
    _, m2 = p.loss(changed)
    assert m2["align"] == m["align"] and m2["loss"] == m["loss"]
    changed["final_goal_image"] = batch["final_goal_image"].copy()
    changed["final_goal_image"][0] = 0
    assert p.loss(changed)[1]["align"] != m["align"]
    no_final = {k: v for k, v in batch.items() if k != "final_goal_image"}   # falls back to goal_image
    assert p.loss(no_final)[1]["align"] != m["align"]


def test_accepts_the_trainers_torch_batches():
    batch = make_batch([True, False, True], ["open drawer", "", "open drawer"])
    as_torch = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in batch.items()}
    as_torch["images"] = {"front": torch.from_numpy(batch["images"]["front"])}
    p = make_policy().eval()
    assert p.loss(as_torch)[1] == p.loss(batch)[1]


def test_total_loss_composition_and_ablation():
    batch = make_batch([True, True, False, True], ["a b", "c d", "", "a b"])
    for weight in (1.0, 0.0, 2.5):
        p = make_policy(align_weight=weight).eval()
        loss, m = p.loss(batch)
        assert loss.item() == pytest.approx(m["bc_image"] + m["bc_language"] + weight * m["align"], rel=1e-5)
        loss.backward()
        assert (p.log_tau.grad is None or p.log_tau.grad == 0) == (weight == 0.0)


def test_random_shift_only_in_training():
    batch = make_batch([True, False], ["a", ""])
    p = make_policy()
    p.eval()
    assert p.loss(batch)[1]["loss"] == p.loss(batch)[1]["loss"]
    p.train()
    torch.manual_seed(1)
    first = p.loss(batch)[1]["loss"]
    assert any(p.loss(batch)[1]["loss"] != first for _ in range(3))


def test_start_and_goal_share_one_shift_in_training():
    """f(s0, g) reads the change between two frames; a shift of one but not the other is a change that
    act() never shows. With s0 == g, the stacked input's two halves must stay equal under augmentation."""
    batch = make_batch([False] * 8, [""] * 8, final=False)
    batch["goal_image"] = batch["start_image"].copy()
    p = make_policy(aug_pad=4).train()
    seen = []
    hook = p.task_encoder.register_forward_pre_hook(lambda _m, args: seen.append(args))
    p.loss(batch)
    hook.remove()
    s0, goal = seen[0]
    assert torch.equal(s0, goal)
    unshifted = torch.from_numpy(batch["start_image"]).permute(0, 3, 1, 2).float() / 255
    assert not torch.equal(s0, unshifted)          # the augmentation did move them


def test_tiny_model_overfits_a_batch():
    texts = ["open drawer", "stack blocks", "", "", "open drawer", "", "close drawer", ""]
    batch = make_batch([bool(t) for t in texts], texts, seed=3)
    p = make_policy(aug_pad=0).train()
    opt = torch.optim.Adam(p.parameters(), lr=1e-3)
    bc = []
    for _ in range(200):
        loss, m = p.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bc.append(m["bc_image"] + m["bc_language"])
    assert np.mean(bc[-5:]) * 5 <= np.mean(bc[:5]), (bc[:5], bc[-5:])


# --- 5-8: the Policy interface ---------------------------------------------------------------------
def test_data_spec():
    spec = make_policy().data_spec()
    assert spec.cameras == ("front",) and spec.obs_horizon == 1 and spec.image_size == SIZE
    assert spec.action_horizon == TINY.action_horizon and spec.goal_camera == "front"
    assert spec.goal_final_prob == 0.5 and spec.action_norm == "meanstd"
    assert GRIFPolicy.conditioning == frozenset({"goal_image", "instruction"}) and GRIFPolicy.name == "grif"


def test_act_for_both_modalities_through_one_head():
    p = make_policy()
    o = obs(5)
    p.reset(Task(goal_image=image(2), start_image=image(1)))
    chunk = p.act(o)
    assert isinstance(chunk, ActionChunk) and len(chunk) == TINY.action_horizon
    frame = torch.from_numpy(o.images["front"][None]).permute(0, 3, 1, 2).float() / 255
    raw = p.policy([frame], p.embed_images(image(1), image(2)))[0].detach().numpy()
    np.testing.assert_allclose(p.predict([o], p.task), actions.unnormalise(raw.astype(np.float64), p.stats["action"],
                                                                           "meanstd"), rtol=1e-5, atol=1e-6)
    p.reset(Task(instruction="open the drawer"))
    assert len(p.act(o)) == TINY.action_horizon
    raw = p.policy([frame], p.embed_instructions(["open the drawer"]))[0].detach().numpy()
    np.testing.assert_allclose(p.predict([o], p.task), actions.unnormalise(raw.astype(np.float64), p.stats["action"],
                                                                           "meanstd"), rtol=1e-5, atol=1e-6)


def test_modality_preference_and_missing_start_frame():
    both = Task(goal_image=image(2), start_image=image(1), instruction="open the drawer")
    p = make_policy()
    p.reset(both)
    assert torch.allclose(p._z, p.embed_images(image(1), image(2)))
    p = make_policy(prefer="instruction")
    p.reset(both)
    assert torch.allclose(p._z, p.embed_instructions(["open the drawer"]))
    p = make_policy()
    p.reset(Task(goal_image=image(2)))                       # no start image: the first observation is s0
    assert p._z is None
    first = obs(7)
    p.act(first)
    p.act(obs(8))
    assert torch.allclose(p._z, p.embed_images(first.images["front"], image(2)))


def test_refuses_bad_tasks_and_observations():
    p = make_policy()
    with pytest.raises(MissingConditioning):
        p.reset(Task())
    with pytest.raises(MissingConditioning):
        p.act(obs())                                           # no task yet
    p.reset(Task(instruction="open the drawer"))
    with pytest.raises(BadObservation):
        p.act(obs(size=SIZE + 8))
    with pytest.raises(BadObservation):
        p.reset(Task(goal_image=image(0)[:16]))


def test_save_load_round_trip(tmp_path):
    p = make_policy()
    with torch.no_grad():
        p.log_tau.fill_(math.log(0.1))
    p.save(tmp_path / "ckpt")
    q = load_policy(tmp_path / "ckpt")
    assert isinstance(q, GRIFPolicy) and q.config == p.config and not q.training
    assert state_keys_ok(q) and set(q.state_dict()) == set(p.state_dict())
    n_params = sum(v.numel() for v in q.state_dict().values())
    assert n_params < 5_000_000                               # MiniLM alone has ~22M
    o = obs(3)
    for task in (Task(goal_image=image(2), start_image=image(1)), Task(instruction="stack the blocks")):
        p.reset(task)
        q.reset(task)
        np.testing.assert_array_equal(p.act(o).positions, q.act(o).positions)
        np.testing.assert_array_equal(p.predict([o], task), q.predict([o], task))


def test_gripper_input_reaches_the_head_in_training_and_act():
    """With gripper_input the finger width changes the action (the stall at the grasp needs it); without, it cannot."""
    p = make_policy(gripper_input=True, aug_pad=0).eval()
    p.reset(Task(goal_image=image(2), start_image=image(1)))
    o = obs(5)
    wide, closed = p.predict([o], p.task), p.predict([replace(o, gripper=0.0)], p.task)
    assert np.abs(wide - closed).max() > 1e-4
    batch = make_batch([1, 0], ["open the drawer", ""])
    batch["proprio"] = np.zeros((2, 1, 8), np.float32)
    base = p.predict_batch(batch)
    batch["proprio"][:, :, 7] = 2.0
    assert (p.predict_batch(batch) - base).abs().max() > 1e-4
    p.train()
    p.loss(batch)[0].backward()                              # a labelled row passes twice, width included
    assert p.policy.head[0].weight.grad[:, -1].abs().sum() > 0
    plain = make_policy()
    plain.reset(Task(goal_image=image(2), start_image=image(1)))
    np.testing.assert_array_equal(plain.predict([o], plain.task), plain.predict([replace(o, gripper=0.0)], plain.task))


def test_gripper_input_needs_proprio_statistics():
    p = make_policy(gripper_input=True)
    del p.stats["proprio"]
    p.reset(Task(instruction="open the drawer"))
    with pytest.raises(CheckpointMismatch, match="finger width"):
        p.act(obs())


def test_keypoint_pooling_reads_where_a_feature_is():
    """pooling=keypoints: the last stage keeps size/16 (no stride), the head sees 2K soft-argmax coordinates, and a
    bright square moved across the frame moves them (avg pooling of a translation-equivariant map would not)."""
    p = make_policy(pooling="keypoints", keypoints=6).eval()
    frames = torch.zeros(2, 3, SIZE, SIZE)
    frames[0, :, 2:8, 2:8] = 1.0
    frames[1, :, 24:30, 24:30] = 1.0
    view = p.policy.views[0]
    x = view.stem(frames)
    for stage in view.trunk.stages:
        x = stage(x)
    assert x.shape[-1] == SIZE // 16
    coords = view.pool(x)
    assert coords.shape == (2, 12) and coords.abs().max() <= 1.0
    assert (coords[0] - coords[1]).abs().max() > 0.05
    q = load_policy(p.save(Path(tempfile.mkdtemp()) / "kp"))
    z = p.embed_instructions(["open the drawer"])
    torch.testing.assert_close(q.policy([frames], z), p.policy([frames], z))


def test_wrist_view_starts_silent_then_learns_and_is_required():
    """cameras=(front, wrist): a second FiLM view whose head weights start at zero, so a front-only checkpoint
    fine-tuned into it (init_from) starts from the same actions; one training step makes the wrist frame matter;
    an observation without the wrist frame is refused."""
    from robot_stack.policies.train import EMA, init_weights
    front_only = make_policy(gripper_input=True, aug_pad=0).eval()
    ckpt = front_only.save(Path(tempfile.mkdtemp()) / "front")
    p = make_policy(gripper_input=True, aug_pad=0, cameras=["front", "wrist"])
    assert p.data_spec().cameras == ("front", "wrist")
    note = init_weights(p, EMA(p, 0.9), ckpt)
    assert "fresh: policy.view_inputs.0.weight, policy.views.1." in note
    task = Task(goal_image=image(2), start_image=image(1))
    front_only.reset(task)
    p.eval().reset(task)
    o = replace(obs(5), images={"front": image(5), "wrist": image(6)})
    np.testing.assert_allclose(p.predict([o], p.task), front_only.predict([o], front_only.task), atol=1e-6)
    other_wrist = replace(o, images={"front": image(5), "wrist": image(7)})
    np.testing.assert_array_equal(p.predict([o], p.task), p.predict([other_wrist], p.task))

    batch = make_batch([1, 0], ["open the drawer", ""])
    batch["images"]["wrist"] = batch["images"]["front"][::-1].copy()
    batch["proprio"] = np.zeros((2, 1, 8), np.float32)
    p.train()
    opt = torch.optim.SGD(p.parameters(), lr=1.0)
    p.loss(batch)[0].backward()
    assert p.policy.view_inputs[0].weight.grad.abs().sum() > 0
    opt.step()
    p.eval()
    assert np.abs(p.predict([o], p.task) - p.predict([other_wrist], p.task)).max() > 1e-4
    with pytest.raises(BadObservation, match="wrist"):
        p.predict([obs(5)], p.task)
    q = load_policy(p.save(Path(tempfile.mkdtemp()) / "wrist"))
    np.testing.assert_allclose(q.predict([o], task), p.predict([o], task), atol=1e-6)


def test_cameras_must_be_front_or_front_and_wrist():
    with pytest.raises(ValueError, match="cameras"):
        make_policy(cameras=["wrist"])
