"""mmdenoise: multi-modal recommendation with plug-and-play denoising."""
__version__ = "0.1.0"

import os as _os  # noqa: E402

# Before anything loads torch's OpenMP runtime: its idle workers wait without spinning. Spinning workers
# made a LightGCN epoch 3.1x slower beside one CPU-bound process (2 cores); passive waiting costs nothing
# measurable on an idle machine (README, "Speed"). A value the user set is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# glibc's mallopt parameters (malloc.h: M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) and the values set at import
_KEPT_ALLOCATIONS = {-3: 32 << 20, -1: 256 << 20}


def _keep_freed_memory(environ=_os.environ, libc=None) -> bool:
    """Serve allocations up to 32 MiB from the heap and keep up to 256 MiB of freed heap (glibc).

    glibc maps each allocation above its mmap threshold (128 KiB at first) afresh and unmaps it when
    freed, so a step that allocates item-sized tensors pays a page fault per 4 KiB every time: with
    Book-Crossing's 36,041 items (a [36,041 × 128] view is 18 MB) ~30,000 faults and 15-20% of a DA-MRS
    step, 9% of FREEDOM's. Peak memory is unchanged (within 10% measured); memory freed is kept for
    reuse. Nothing is changed where the user set either variable (MALLOC_MMAP_THRESHOLD_,
    MALLOC_TRIM_THRESHOLD_) or where the C library cannot be opened or has no mallopt (not glibc).
    Returns whether it was set.
    """
    if "MALLOC_MMAP_THRESHOLD_" in environ or "MALLOC_TRIM_THRESHOLD_" in environ:
        return False
    if libc is None:
        import ctypes
        try:
            libc = ctypes.CDLL(None)  # the C library this process runs on
        except (OSError, TypeError):  # TypeError: Windows, whose loader needs a library's name
            return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return all([mallopt(option, value) == 1 for option, value in _KEPT_ALLOCATIONS.items()])


_keep_freed_memory()

from . import log  # noqa: E402,F401  (installs the NullHandler: library use is silent)
from .data import Dataset, load_dataset  # noqa: E402

__all__ = ["Dataset", "load_dataset", "train", "evaluate_run", "Run", "Recommendations", "__version__"]


def __getattr__(name: str):
    # the training API pulls in torch; importing it lazily keeps `mmdenoise data ...` fast
    if name in ("train", "evaluate_run", "Run", "Recommendations"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'mmdenoise' has no attribute {name!r}")
