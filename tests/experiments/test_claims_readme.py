"""The README's verdict table and cell count, written from a claims folder (``make claims-readme``)."""
from __future__ import annotations

import json

import pytest

from mmdenoise.errors import MMDenoiseError
from mmdenoise.experiments.claims.page import summary_table
from mmdenoise.experiments.claims.readme import (README_END, README_START, main, readme_with_verdicts,
                                                 refresh_readme)


def _claims() -> dict:
    """Two datasets, one claim: a confirmed cell, a pending one and a cut one (1 of 2 cells)."""
    def cell(dataset, status, verdict=None):
        return {"method": "a", "versus": "none", "backbone": "mf", "dataset": dataset, "status": status,
                **({"verdict": verdict, "delta": {"recall@20": 0.01}, "p": {"recall@20": 1e-6},
                    "seed_deltas": []} if verdict else {})}
    datasets = [{"name": "r-add", "source": "ml-100k"}, {"name": "s-add", "source": "synth-baby"}]
    return {"alpha": 0.05, "datasets": datasets,
            "claims": [{"id": "one", "claim": "A beats none", "cells": [
                cell("r-add", "done", "confirmed"), cell("s-add", "pending"), cell("s-add", "cut")]}]}


README = f"""# project

What holds ([the page](docs/results/claims.md), 7 of 9 cells):

{README_START}

| stale | table |

{README_END}

Text after, which mentions 3 of 4 cells elsewhere.
"""


def test_the_table_and_the_count_are_written_from_claims_json_and_nothing_else_changes():
    data = _claims()
    new = readme_with_verdicts(README, data, "docs/results/claims.md")
    table = summary_table(data, "docs/results/claims.md")
    assert new == README.replace("7 of 9 cells", "1 of 2 cells").replace("| stale | table |", table)
    assert "| [A beats none](docs/results/claims.md#one) | confirmed | pending |" in new
    assert "3 of 4 cells elsewhere" in new   # only the count before the table is the page's
    assert readme_with_verdicts(new, data, "docs/results/claims.md") == new   # up to date: unchanged


@pytest.mark.parametrize("text, said", [
    (README.replace(README_START, ""), "found 0 start and 1 end lines"),
    (README + README_END + "\n", "found 1 start and 2 end lines"),
    (README.replace(README_START, "@@").replace(README_END, README_START).replace("@@", README_END),
     "found the end line first"),
    (README.replace("7 of 9 cells", "the cells"), "no count of cells"),
])
def test_a_readme_without_its_markers_or_count_is_refused_by_name(text, said):
    with pytest.raises(MMDenoiseError, match=said) as error:
        readme_with_verdicts(text, _claims(), "p.md", where="docs/README.md")
    assert str(error.value).startswith("docs/README.md: ")


def test_the_file_is_written_with_the_page_linked_relative_to_the_readme(tmp_path, capsys):
    out = tmp_path / "docs" / "results" / "claims"
    out.mkdir(parents=True)
    (out / "claims.json").write_text(json.dumps(_claims()), encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    assert refresh_readme(readme, out)
    assert "(docs/results/claims.md#one)" in readme.read_text(encoding="utf-8")
    written = readme.read_text(encoding="utf-8")
    assert not refresh_readme(readme, out) and readme.read_text(encoding="utf-8") == written
    assert main([str(readme), str(out)]) == 0
    assert "verdicts already up to date" in capsys.readouterr().out
    # errors name the file; nothing is written
    assert main([str(tmp_path / "missing.md"), str(out)]) == 1
    assert "missing.md: not found" in capsys.readouterr().err
    assert main([str(readme), str(tmp_path)]) == 1
    assert "claims.json: not found; is" in capsys.readouterr().err
    assert main(["--help"]) == 2 and main(["a", "b", "c"]) == 2
    assert readme.read_text(encoding="utf-8") == written
