"""mmdenoise: multi-modal recommendation with plug-and-play denoising."""
from .data import Dataset, load_dataset

__version__ = "0.1.0"

__all__ = ["Dataset", "load_dataset", "__version__"]
