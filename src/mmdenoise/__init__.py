"""mmdenoise: multi-modal recommendation with plug-and-play denoising."""
__version__ = "0.1.0"

from .data import Dataset, load_dataset  # noqa: E402
from .api import Run, evaluate_run, train  # noqa: E402

__all__ = ["Dataset", "load_dataset", "train", "evaluate_run", "Run", "__version__"]
