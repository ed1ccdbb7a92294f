"""Data layer: the Dataset object, file formats, builders, synthetic data, noise, sampling."""
from .dataset import Dataset, Interactions, NoiseTruth
from .mmrec import read_mmrec, write_mmrec
from .registry import DATASETS, load_dataset

__all__ = ["Dataset", "Interactions", "NoiseTruth", "read_mmrec", "write_mmrec", "DATASETS", "load_dataset"]
