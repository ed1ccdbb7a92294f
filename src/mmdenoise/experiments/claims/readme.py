"""The README's verdict table, written from a claims folder (``make claims-readme``).

The README opens with each claim's verdict on each dataset (``page.summary_table``) and the count of the
page's cells; both are copies of claims.json, so they are written from it, between two marker lines, and a
test checks that the committed README is what this module would write.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import MMDenoiseError
from ...io import write_text
from .cells import CUT
from .page import page_path, read_claims, summary_table

#: the lines around the README's verdict table (HTML comments: invisible where the README is rendered)
README_START = "<!-- verdicts: written by `make claims-readme` from docs/results/claims/claims.json -->"
README_END = "<!-- end of verdicts -->"
#: the README's count of the page's cells, in the text before the table ("193 of 240 cells")
CELL_COUNT = re.compile(r"\b\d+ of \d+ cells\b")


def cell_count(data: Mapping[str, Any]) -> str:
    """"N of M cells": cells with evidence of all that are not cut."""
    statuses = [cell["status"] for claim in data["claims"] for cell in claim["cells"]]
    return f"{statuses.count('done')} of {len(statuses) - statuses.count(CUT)} cells"


def readme_with_verdicts(readme: str, data: Mapping[str, Any], page: str, where: str = "README") -> str:
    """``readme`` (text) with the verdict table between :data:`README_START` and :data:`README_END` written
    anew (``summary_table(data, page)``) and the last "N of M cells" before it updated (``cell_count``).

    An MMDenoiseError naming ``where`` when a marker is missing, repeated or out of order, or no count
    precedes the table; the text is returned unchanged when it is up to date.
    """
    starts, ends = readme.count(README_START), readme.count(README_END)
    if starts != 1 or ends != 1 or readme.index(README_START) > readme.index(README_END):
        found = (f"found {starts} start and {ends} end lines" if (starts, ends) != (1, 1)
                 else "found the end line first")
        raise MMDenoiseError(f"{where}: needs the verdict table between one line {README_START!r} and one "
                             f"line {README_END!r} after it ({found})")
    before, rest = readme.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    counts = list(CELL_COUNT.finditer(before))
    if not counts:
        raise MMDenoiseError(f"{where}: no count of cells (e.g. '10 of 12 cells') before the verdict table")
    last = counts[-1]
    before = before[:last.start()] + cell_count(data) + before[last.end():]
    return f"{before}{README_START}\n\n{summary_table(data, page)}\n\n{README_END}{after}"


def refresh_readme(readme: str | Path, out: str | Path) -> bool:
    """Write the verdicts of the claims folder ``out`` (its claims.json) into ``readme`` (a file), linking
    the page by its path relative to the README; True when the file changed. Checks as
    ``readme_with_verdicts``; a missing or unreadable claims.json is an MMDenoiseError naming it."""
    readme, out = Path(readme), Path(out)
    data = read_claims(out)
    try:
        text = readme.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MMDenoiseError(f"{readme}: not found (the README to write the verdicts into)") from None
    page = Path(os.path.relpath(page_path(out).resolve(), readme.resolve().parent)).as_posix()
    new = readme_with_verdicts(text, data, page, where=str(readme))
    if new == text:
        return False
    write_text(readme, new)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmdenoise.experiments.claims.readme [README] [CLAIMS_FOLDER]`` (``make claims-readme``):
    ``refresh_readme`` with README.md and docs/results/claims by default."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 2 or any(a.startswith("-") for a in args):
        print("usage: python -m mmdenoise.experiments.claims.readme [README] [CLAIMS_FOLDER]", file=sys.stderr)
        return 2
    readme = args[0] if args else "README.md"
    out = args[1] if len(args) > 1 else "docs/results/claims"
    try:
        changed = refresh_readme(readme, out)
    except MMDenoiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{readme}: {'verdicts written' if changed else 'verdicts already up to date'} from {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
