"""mmdenoise: multi-modal recommendation with plug-and-play denoising."""
__version__ = "0.1.0"

import os as _os  # noqa: E402

# Before anything loads torch's OpenMP runtime: its idle workers wait without spinning. Spinning workers
# made a LightGCN epoch 3.1x slower beside one CPU-bound process (2 cores); passive waiting costs nothing
# measurable on an idle machine (README, "Speed"). A value the user set is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import log  # noqa: E402,F401  (installs the NullHandler: library use is silent)
from .data import Dataset, load_dataset  # noqa: E402

__all__ = ["Dataset", "load_dataset", "train", "evaluate_run", "Run", "Recommendations", "__version__"]


def __getattr__(name: str):
    # the training API pulls in torch; importing it lazily keeps `mmdenoise data ...` fast
    if name in ("train", "evaluate_run", "Run", "Recommendations"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'mmdenoise' has no attribute {name!r}")
