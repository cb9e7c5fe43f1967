import torch

from robot_stack.policies.augment import random_shift, shift_by_gather, shift_by_slices
from robot_stack.policies.beso.model import to_float


def test_random_shift_is_replicate_pad_and_crop():
    imgs = torch.randint(0, 256, (6, 16, 16, 3), dtype=torch.uint8)
    torch.manual_seed(0)
    out = random_shift(imgs, 4)
    torch.manual_seed(0)
    d = torch.randint(-4, 5, (6, 2))
    padded = torch.nn.functional.pad(imgs.permute(0, 3, 1, 2).float(), (4, 4, 4, 4), mode="replicate")
    for i in range(6):
        dy, dx = d[i].tolist()
        crop = padded[i, :, 4 + dy:20 + dy, 4 + dx:20 + dx].permute(1, 2, 0)
        assert torch.equal(out[i].float(), crop)
    assert not torch.equal(out, imgs)


def test_gather_and_slices_agree_for_every_offset():
    """The GPU path (gather) and the CPU path (slices) give the same frames, offsets at the limits included."""
    imgs = torch.randint(0, 256, (81, 12, 10, 3), dtype=torch.uint8)
    shifts = torch.tensor([(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)])
    assert torch.equal(shift_by_gather(imgs, shifts), shift_by_slices(imgs, shifts))


def test_zero_pad_is_identity_and_to_float_scales():
    imgs = torch.randint(0, 256, (3, 8, 8, 3), dtype=torch.uint8)
    assert random_shift(imgs, 0) is imgs
    assert torch.allclose(to_float(imgs), imgs.permute(0, 3, 1, 2).float() / 255)
