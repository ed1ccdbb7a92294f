"""Every relative link in the README and under docs/ reaches a file, and every ``#anchor`` a heading there.

Anchors follow GitHub's rule: the heading lower-cased, punctuation other than ``-`` and ``_`` dropped,
spaces turned into hyphens, and ``-1``, ``-2``, ... appended to repeats. Code blocks are skipped (their
``#`` lines are comments, their brackets code).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CODE_BLOCK = re.compile(r"```.*?```", re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading's text."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@lru_cache(maxsize=None)  # each linked page is read once, not once per link to it
def anchors(page: Path) -> frozenset[str]:
    """The anchors a page's headings (and explicit ``<a id=...>`` tags) define."""
    text = CODE_BLOCK.sub("", page.read_text(encoding="utf-8"))
    found, seen = set(), {}
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        base = slug(heading)
        found.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return frozenset(found | set(re.findall(r'<a (?:name|id)="([^"]+)"', text)))


def relative_links(page: Path) -> list[str]:
    """The link targets of a page that are neither URLs nor inside code blocks."""
    text = CODE_BLOCK.sub("", page.read_text(encoding="utf-8"))
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", t)]


def test_slug_follows_githubs_rule():
    assert slug("Which denoiser should I use?") == "which-denoiser-should-i-use"
    assert slug("f and g: weights, or learnt through (`fg_gradient`)") == \
        "f-and-g-weights-or-learnt-through-fg_gradient"
    assert slug("ml-1m: the second dataset") == "ml-1m-the-second-dataset"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {', '.join(broken)}"
