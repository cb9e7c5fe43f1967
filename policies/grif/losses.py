"""GRIF's alignment loss: symmetric InfoNCE between image-task and language-task embeddings."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def same_instruction_targets(instructions: list[str], device=None) -> torch.Tensor:
    """(N, N) row-stochastic targets: uniform over the rows that share row i's instruction.

    Several episodes of one task share a string, so treating only the diagonal as positive
    would push identical instructions apart; every row with the same text is a positive.
    """
    codes = {text: i for i, text in enumerate(dict.fromkeys(instructions))}
    ids = torch.tensor([codes[t] for t in instructions], device=device)
    same = (ids[:, None] == ids[None, :]).float()
    return same / same.sum(1, keepdim=True)


def alignment_loss(z_image: torch.Tensor, z_language: torch.Tensor, instructions: list[str],
                   tau: torch.Tensor) -> torch.Tensor:
    """Mean of the image->language and language->image multi-positive cross-entropies.

    z_image, z_language: (N, D) L2-normalised, row i of each from the same labelled episode;
    logits = cos / tau. With N == 0 the loss is 0 (a batch without labelled rows).
    """
    n = z_image.shape[0]
    if n == 0:
        return z_image.sum() * 0 + z_language.sum() * 0
    logits = z_image @ z_language.T / tau
    targets = same_instruction_targets(instructions, z_image.device)   # symmetric
    img_to_lang = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    lang_to_img = -(targets * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (img_to_lang + lang_to_img) / 2
