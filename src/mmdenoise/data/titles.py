"""Item titles for display: the optional ``items.tsv`` of a dataset folder.

Format (written by the real-data builders): UTF-8, tab-separated, a header line
``itemID<TAB>title``, then one row per item, ``itemID`` the 0-based item index.
A title may itself hold tabs (everything after the first tab is the title).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import write_text

ITEMS_FILE = "items.tsv"
HEADER = "itemID\ttitle"


def write_item_titles(folder: str | Path, titles: list[str]) -> Path:
    """Write ``titles`` [n_items] as ``folder/items.tsv`` (atomically); tabs and line breaks in a title
    become spaces, so each item stays one row."""
    path = Path(folder) / ITEMS_FILE
    write_text(path, HEADER + "\n" + "".join(f"{i}\t{' '.join(str(t).split())}\n" for i, t in enumerate(titles)))
    return path


def read_item_titles(folder: str | Path | None, n_items: int) -> np.ndarray | None:
    """The title of every item, a str array [n_items] ("" for an item without a row), or None when
    ``folder`` is None or holds no ``items.tsv``. DataError naming the file and row on a bad header,
    a non-integer or out-of-range id, or an id listed twice."""
    if folder is None or not (Path(folder) / ITEMS_FILE).is_file():
        return None
    path = Path(folder) / ITEMS_FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].rstrip("\r") != HEADER:
        raise DataError(f"expected the header line {HEADER!r}", path=path, row=1)
    titles = np.full(n_items, "", dtype=object)
    seen = np.zeros(n_items, dtype=bool)
    for row, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        item, _, title = line.rstrip("\r").partition("\t")
        try:
            index = int(item)
        except ValueError:
            raise DataError(f"not an integer: {item!r}", path=path, row=row, field="itemID") from None
        if not 0 <= index < n_items:
            raise DataError(f"item {index} is out of range 0..{n_items - 1}", path=path, row=row, field="itemID")
        if seen[index]:
            raise DataError(f"item {index} is listed twice", path=path, row=row, field="itemID")
        seen[index] = True
        titles[index] = title
    return titles.astype(str)
