"""The CUDA contract, end to end: what a user on a GPU machine runs works there and agrees with the CPU.

Skipped where torch sees no CUDA device (CI never has one); run on a GPU with
``python -m pytest tests -k cuda``. The per-module checks (``test_runs_on_cuda``
in tests/models, ``test_sparse_operator_on_cuda`` in tests/graphs) cover the
parts; this module covers the public paths that join them:

- every registered denoiser trains through ``mmdenoise.train`` on ``cuda`` on an
  ID-only, a graph, a content and a multi-modal graph backbone, with finite
  losses and metrics, its backbone left on the device;
- the full-ranking evaluation on ``cuda`` gives the CPU's per-user metrics for
  the same weights (``evaluate_run`` of one run folder on each device);
- a run trained on ``cuda`` reloads from its folder (``Run.load``) and recommends
  what the trained model recommends on the device;
- Demure (the sequential task) trains on ``cuda``.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import yaml

from mmdenoise.api import Run, evaluate_run, train
from mmdenoise.data import read_mmrec
from mmdenoise.data.synth import generate
from mmdenoise.denoise import DENOISERS
from tests.denoise.test_contract import FAST, params

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

BACKBONES = ("mf", "lightgcn", "vbpr", "freedom")
TRAIN = {"epochs": 2, "batch_size": 512, "progress": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The ``tiny`` preset (300 users, 200 items), image 32-d and text 16-d."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    return read_mmrec(generate("tiny", seed=0, out=out, image_dim=32, text_dim=16))


def _train(dataset, model, denoiser, out, device):
    """Two epochs of ``model`` + ``denoiser`` on ``device``, with the denoiser contract's short-run settings."""
    return train(dataset, model=model, denoiser=denoiser, out=out, seed=0,
                 config={"denoiser_params": params(DENOISERS, denoiser, FAST), "train": {**TRAIN, "device": device}})


@pytest.mark.parametrize("model, denoiser", [(m, d) for d in sorted(DENOISERS) for m in BACKBONES])
def test_every_denoiser_trains_on_cuda(model, denoiser, tiny, tmp_path):
    run = _train(tiny, model, denoiser, tmp_path / "run", "cuda")
    assert run.result["device"].startswith("cuda")
    assert len(run.history) == 2 and all(np.isfinite(row["loss"]) for row in run.history)
    assert all(0.0 <= value <= 1.0 for value in run.test.values())
    assert all(p.is_cuda for p in run.backbone.parameters())


@pytest.mark.parametrize("model", ["lightgcn", "freedom"])
def test_cuda_evaluation_gives_the_cpu_metrics(model, tiny, tmp_path):
    """One CPU-trained run folder evaluated on each device: the same per-user metrics (float32 scores
    from two matmul kernels may reorder a near-tie, so at most 1% of users may differ)."""
    cpu_run = tmp_path / "cpu"
    _train(tiny, model, "none", cpu_run, "cpu")
    cuda_run = tmp_path / "gpu"
    shutil.copytree(cpu_run, cuda_run)
    config = yaml.safe_load((cuda_run / "config.yaml").read_text())
    config["train"]["device"] = "cuda"
    (cuda_run / "config.yaml").write_text(yaml.safe_dump(config))
    for on_cpu, on_cuda in zip(evaluate_run(cpu_run, tiny), evaluate_run(cuda_run, tiny)):
        np.testing.assert_array_equal(on_cpu.users, on_cuda.users)
        for metric, values in on_cpu.per_user.items():
            differs = ~np.isclose(values, on_cuda.per_user[metric], atol=1e-6)
            assert differs.mean() <= 0.01, metric
            assert on_cpu.metrics[metric] == pytest.approx(on_cuda.metrics[metric], abs=1e-3), metric


def test_a_cuda_run_reloads_and_recommends_what_it_trained(tiny, tmp_path):
    """The checkpoint is read to the CPU (``map_location``), so a run trained on a GPU opens anywhere."""
    run = _train(tiny, "lightgcn", "tce", tmp_path / "run", "cuda")
    users = np.arange(0, tiny.n_users, 7)
    on_device = run.recommend(users, k=10)
    loaded = Run.load(run.path, tiny)
    on_cpu = loaded.recommend(users, k=10)
    same = (np.asarray(on_device.items) == np.asarray(on_cpu.items)).all(axis=1)
    assert same.mean() >= 0.99


def test_demure_trains_on_cuda(tmp_path):
    from mmdenoise.data import load_dataset
    from mmdenoise.data.seqsynth import generate_sequential
    data = load_dataset(generate_sequential("seq-tiny", seed=0, out=tmp_path / "seq-tiny"))
    run = train(data, model="demure", out=tmp_path / "run", seed=0,
                config={"train": {"epochs": 2, "progress": False, "device": "cuda"}})
    assert run.result["device"].startswith("cuda")
    assert all(np.isfinite(row["loss"]) for row in run.history)
    assert all(0.0 <= value <= 1.0 for value in run.test.values())
