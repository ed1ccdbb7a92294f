"""Fixtures of the sequential tests: the planted ``seq-tiny`` preset, generated once per session.

Every test here runs torch on one thread: the problems are tiny and the
machine may be shared.
"""
from __future__ import annotations

import pytest
import torch

from mmdenoise.data import load_dataset
from mmdenoise.data.seqsynth import generate_sequential


@pytest.fixture(scope="session")
def seq_tiny_folder(tmp_path_factory):
    return generate_sequential("seq-tiny", seed=0, out=tmp_path_factory.mktemp("seq") / "seq-tiny")


@pytest.fixture(scope="session")
def seq_tiny(seq_tiny_folder):
    return load_dataset(seq_tiny_folder)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
