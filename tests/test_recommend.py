"""Run.load gives the trained model back; Run.recommend / `mmdenoise recommend` rank as the evaluator
does (general and sequential runs); item titles come from items.tsv."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mmdenoise.api import Run, train
from mmdenoise.cli import app
from mmdenoise.data import load_dataset
from mmdenoise.data.seqsynth import generate_sequential
from mmdenoise.data.synth import generate
from mmdenoise.data.titles import ITEMS_FILE, read_item_titles
from mmdenoise.errors import ConfigError, DataError, RunError
from mmdenoise.eval import Evaluator
from mmdenoise.training.record import read_per_user
from mmdenoise.training.trainer import Trainer

FAST = ["train.threads=1", "train.progress=false"]


def _write_titles(folder, n_items):
    rows = "".join(f"{i}\tMovie {i}\twith a tab ({1990 + i % 10})\n" for i in range(n_items))
    (folder / ITEMS_FILE).write_text("itemID\ttitle\n" + rows, encoding="utf-8")


@pytest.fixture(scope="module")
def general_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    folder = generate("tiny", seed=0, out=root / "tiny")
    run = train(str(folder), model="lightgcn", seed=0, out=root / "run", overrides=[*FAST, "train.epochs=3"])
    _write_titles(folder, run.dataset.n_items)      # after training: titles do not change the data
    return run


@pytest.fixture(scope="module")
def sequential_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("seqrec")
    folder = generate_sequential("seq-tiny", seed=0, out=root / "seq")
    torch.set_num_threads(1)
    return train(str(folder), model="base", seed=0, out=root / "run",
                 overrides=[*FAST, "train.epochs=2", "dim=16", "train.batch_size=256"])


def test_load_rebuilds_the_model_and_recommend_equals_the_evaluators_ranking(general_run):
    loaded = Run.load(general_run.path)
    assert loaded.backbone is not None and loaded.test == general_run.test
    evaluator = Evaluator(loaded.dataset, "test")
    user_emb, item_emb = loaded.backbone()
    ranked = evaluator.evaluate(lambda u: loaded.backbone.full_scores(user_emb, item_emb, u), keep_ranking=True)
    assert ranked.metrics == pytest.approx(general_run.test)
    recs = loaded.recommend(ranked.users, k=50)
    assert recs.items.shape == (ranked.users.size, 50)
    assert (recs.items == ranked.top_items).all()
    # training items never come back; scores are descending
    train = loaded.dataset.interaction_matrix("train")
    assert not any(train[u, recs.items[j]].nnz for j, u in enumerate(recs.users[:50]))
    assert (np.diff(recs.scores, axis=1) <= 0).all()
    # titles from items.tsv, aligned with the items
    assert recs.titles[0, 0] == f"Movie {recs.items[0, 0]}\twith a tab ({1990 + recs.items[0, 0] % 10})"
    # "all" also masks validation and test items
    everything = loaded.recommend(ranked.users[:20], k=10, exclude="all")
    seen = (train + loaded.dataset.interaction_matrix("valid") + loaded.dataset.interaction_matrix("test")).tocsr()
    assert not any(seen[u, everything.items[j]].nnz for j, u in enumerate(everything.users))


def test_a_run_shows_itself_in_one_line(general_run, sequential_run):
    test = general_run.test["recall@20"]
    assert repr(general_run) == (f"Run({str(general_run.path)!r}: lightgcn + none on tiny, seed 0, 3 epoch(s); "
                                 f"valid recall@20 {general_run.valid['recall@20']:.4f}, test recall@20 {test:.4f})")
    assert repr(Run.load(sequential_run.path, model=False)).startswith(
        f"Run({str(sequential_run.path)!r}: base (sequential) on seq, seed 0, 2 epoch(s); valid recall@20 ")


def test_recommend_errors_are_one_line(general_run):
    n_users = general_run.dataset.n_users
    with pytest.raises(ConfigError, match=rf"^unknown user id {n_users}: .* has user ids 0\.\.{n_users - 1}$"):
        general_run.recommend([1, n_users])
    with pytest.raises(ConfigError, match="unknown user id -1"):
        general_run.recommend([-1])
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        general_run.recommend([1], k=0)
    with pytest.raises(ConfigError, match=r"^users: expected a list of integer ids \(one user: \[3\]\), got 3$"):
        general_run.recommend(3)
    with pytest.raises(ConfigError, match="^users: expected a list of integer ids, got the text '1,2'$"):
        general_run.recommend("1,2")
    with pytest.raises(ConfigError, match="^users: give at least one user id$"):
        general_run.recommend([])
    with pytest.raises(DataError, match="a dataset is a registered name or a folder path, got 123 \\(int\\)"):
        load_dataset(123)
    with pytest.raises(RunError, match="config.yaml is a file of run folder .*: give the folder"):
        Run.load(general_run.path / "config.yaml")
    with pytest.raises(RunError, match=r"is not a run folder \(no config.yaml\); a folder of runs is read by"):
        read_per_user(general_run.path.parent)
    records_only = Run.load(general_run.path, model=False)
    assert records_only.backbone is None and records_only.test == general_run.test
    with pytest.raises(ConfigError, match="no model loaded"):
        records_only.recommend([1])


def test_a_list_past_the_unmasked_items_ends_with_minus_one(general_run):
    n_items = general_run.dataset.n_items
    train = general_run.dataset.interaction_matrix("train").tocsr()
    seen = np.diff(train.indptr)
    users = np.flatnonzero(seen)[:3]
    recs = general_run.recommend(users, k=n_items + 5)                 # k beyond the catalogue: n_items places
    left = n_items - seen[users]
    assert recs.items.shape == (3, n_items)
    assert [(row >= 0).sum() for row in recs.items] == left.tolist()  # every unmasked item, then −1
    for j, u in enumerate(users):
        assert set(recs.items[j, :left[j]]) == set(range(n_items)) - set(train[u].indices)
        assert np.isfinite(recs.scores[j, :left[j]]).all() and np.isnan(recs.scores[j, left[j]:]).all()
        assert (recs.titles[j, left[j]:] == "").all()
    assert len(recs.rows()) == left.sum()
    out = CliRunner().invoke(app, ["recommend", str(general_run.path), "-u", str(users[0]), "-k", str(n_items)])
    assert out.output.count("score") == left[0] and "(item -1," not in out.output and "nan" not in out.output


def test_a_run_on_a_folder_is_read_from_anywhere_and_follows_moved_data(tmp_path, monkeypatch):
    folder = generate("tiny", seed=3, out=tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    run = train("data", model="mf", seed=0, out="run", overrides=[*FAST, "train.epochs=2"])   # a relative folder
    assert run.config.dataset == str(folder.resolve())                  # stored absolute: read from any cwd
    monkeypatch.chdir(tmp_path.parent)
    assert Run.load(tmp_path / "run").test == run.test
    folder.rename(tmp_path / "moved")
    with pytest.raises(DataError, match=r"run was trained on '.*data', which is neither a folder nor a registered "
                                        r"dataset now; if the data moved, give it: --dataset FOLDER"):
        Run.load(tmp_path / "run")
    runner = CliRunner()
    evaluated = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "-d", str(tmp_path / "moved")])
    assert evaluated.exit_code == 0, evaluated.output
    assert re.search(rf"recall@20 +{run.valid['recall@20']:.4f} +{run.test['recall@20']:.4f}", evaluated.output)
    recommended = runner.invoke(app, ["recommend", str(tmp_path / "run"), "-u", "1", "-k", "3", "--format", "json",
                                      "--dataset", str(tmp_path / "moved")])
    assert [r["item"] for r in json.loads(recommended.output)] == run.recommend([1], k=3).items[0].tolist()


def test_recommend_cli_formats(general_run):
    runner = CliRunner()
    out = runner.invoke(app, ["recommend", str(general_run.path), "--users", "1,2", "-k", "3"])
    assert out.exit_code == 0, out.output
    expected = general_run.recommend([1, 2], k=3)
    assert out.output.startswith("user 1:\n    1. Movie ")
    assert f"(item {expected.items[1, 2]}, score" in out.output
    out = runner.invoke(app, ["recommend", str(general_run.path), "-u", "1,2", "-k", "3", "--format", "json"])
    rows = json.loads(out.output)
    assert [r["item"] for r in rows] == expected.items.reshape(-1).tolist()
    assert rows[0]["user"] == 1 and rows[0]["rank"] == 1 and rows[0]["title"].startswith("Movie ")
    out = runner.invoke(app, ["recommend", str(general_run.path), "-u", "2", "-k", "2", "--format", "tsv"])
    lines = out.output.splitlines()
    assert lines[0] == "user\trank\titem\tscore\ttitle" and len(lines) == 3
    assert lines[1].split("\t")[:3] == ["2", "1", str(expected.items[1, 0])]
    assert len(lines[1].split("\t")) == 5                                 # tabs in titles are replaced
    bad = runner.invoke(app, ["recommend", str(general_run.path), "-u", "1,x"])
    assert bad.exit_code == 2 and "expected comma-separated integers" in bad.output


def test_sequential_recommend_follows_the_history_as_evaluated(sequential_run):
    loaded = Run.load(sequential_run.path)
    assert loaded.task == "sequential" and loaded.test == sequential_run.test
    trainer = Trainer(loaded.trained, dataclasses.replace(loaded.config.train, progress=False))
    ranked = trainer.evaluate(trainer.test_evaluator, keep_ranking=True)
    assert ranked.metrics["recall@20"] == pytest.approx(sequential_run.test["recall@20"])
    recs = loaded.recommend(ranked.users, k=50)
    assert (recs.items == ranked.top_items).all()
    # a training user: recommended after its whole sequence, never an item it has seen
    view = loaded.trained.view
    user = int(view.users("train")[0])
    seen = set(view.items[view.indptr[user]:view.indptr[user + 1]].tolist())
    assert not seen & set(loaded.recommend([user], k=20).items[0].tolist())
    out = CliRunner().invoke(app, ["recommend", str(sequential_run.path), "-u", str(user), "-k", "2"])
    assert out.exit_code == 0 and out.output.startswith(f"user {user}:\n    1. item "), out.output
    first = out.output.splitlines()[1]                  # no titles here: the item's id is shown once
    assert first.count("item ") == 1 and first.endswith(")") and "(score " in first, first


def test_item_titles_reader(tmp_path):
    assert read_item_titles(tmp_path, 3) is None and read_item_titles(None, 3) is None
    path = tmp_path / ITEMS_FILE
    path.write_text("itemID\ttitle\n2\tC\n0\tÅ (1995)\n", encoding="utf-8")
    assert read_item_titles(tmp_path, 3).tolist() == ["Å (1995)", "", "C"]
    for text, problem in [("item\ttitle\n0\tA\n", "row 1: expected the header"),
                          ("itemID\ttitle\nx\tA\n", "row 2, field itemID: not an integer: 'x'"),
                          ("itemID\ttitle\n0\tA\n3\tD\n", "row 3, field itemID: item 3 is out of range 0..2"),
                          ("itemID\ttitle\n1\tA\n1\tB\n", "row 3, field itemID: item 1 is listed twice")]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=problem):
            read_item_titles(tmp_path, 3)


def test_item_titles_written_by_builders_read_back(tmp_path):
    from mmdenoise.data.titles import write_item_titles
    write_item_titles(tmp_path, ["Toy Story (1995)", "two\twords\nbroken", "Å"])
    assert read_item_titles(tmp_path, 3).tolist() == ["Toy Story (1995)", "two words broken", "Å"]
