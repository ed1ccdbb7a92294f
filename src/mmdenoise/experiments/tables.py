"""The one table renderer: every Markdown and LaTeX table the library writes (reports, studies, sweeps,
the datasets page, the demo) is a header, an alignment per column and rows of cells, rendered here.

A cell is text or a :class:`Cell` (bold, and a significance mark after it). Alignment letters: ``l``,
``r``, ``c``.

- Markdown (:func:`markdown`): a pipe table; ``l`` writes the plain ``---`` rule, ``|`` inside a cell
  is escaped, an empty cell is ``| |``, bold is ``**text**`` and the mark ``*``.
- LaTeX (:func:`latex`): a booktabs ``tabular`` (``\\toprule``, ``\\midrule``, ``\\bottomrule``; needs
  ``\\usepackage{booktabs}``); cell and header text escaped (:func:`latex_escape`), bold is
  ``\\textbf{text}`` and the mark ``$^*$``; optional column groups above the header
  (``\\multicolumn`` with a ``\\cmidrule`` under each named group) and an optional floating ``table``
  with a caption (LaTeX as given: callers escape the names they put in it).

Both return the table without a trailing newline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

#: alignment letter -> the Markdown rule under the header
ALIGNMENTS = {"l": "---", "r": "---:", "c": ":---:"}


@dataclass(frozen=True)
class Cell:
    """One table cell: ``text``, shown in bold when ``bold``, followed by the significance mark when
    ``marked`` (``*`` in Markdown, ``$^*$`` in LaTeX)."""

    text: str
    bold: bool = False
    marked: bool = False


Row = Sequence["str | Cell"]


def _cells(header: Sequence[str], rows: Sequence[Row], align: str) -> list[list[Cell]]:
    """The rows as Cells; ValueError when a row or the alignment does not have one entry per column."""
    if len(align) != len(header) or any(a not in ALIGNMENTS for a in align):
        raise ValueError(f"alignment {align!r}: one of {', '.join(ALIGNMENTS)} per column ({len(header)})")
    out = []
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(header)} columns: {list(row)}")
        out.append([cell if isinstance(cell, Cell) else Cell(str(cell)) for cell in row])
    return out


# ------------------------------------------------------------------- Markdown
def _markdown_cell(cell: Cell) -> str:
    text = cell.text.replace("|", "\\|")
    if cell.bold and text:
        text = f"**{text}**"
    return text + ("*" if cell.marked else "")


def _markdown_row(cells: Sequence[Cell]) -> str:
    return "|" + "".join(f" {text} |" if text else " |" for text in map(_markdown_cell, cells))


def markdown(header: Sequence[str], rows: Sequence[Row], align: str) -> str:
    """A Markdown pipe table: header, alignment rule, one line per row."""
    body = _cells(header, rows, align)
    return "\n".join([_markdown_row([Cell(h) for h in header]), "|" + "|".join(ALIGNMENTS[a] for a in align) + "|",
                      *(_markdown_row(row) for row in body)])


# ---------------------------------------------------------------------- LaTeX
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (names in tables, captions, figure titles)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _latex_cell(cell: Cell) -> str:
    text = latex_escape(cell.text)
    if cell.bold and text:
        text = rf"\textbf{{{text}}}"
    return text + ("$^*$" if cell.marked else "")


def _latex_row(cells: Sequence[Cell]) -> str:
    return " & ".join(_latex_cell(c) for c in cells) + r" \\"


def latex(header: Sequence[str], rows: Sequence[Row], align: str, *, caption: str | None = None,
          groups: Sequence[tuple[str, int]] = ()) -> str:
    """A booktabs ``tabular``; in a ``table`` float with ``caption`` (raw LaTeX) when one is given.

    groups: (label, number of columns) spanning the columns left to right above the header; a
    label spanning several columns is a ``\\multicolumn``, and every labelled group is ruled
    with a ``\\cmidrule``.
    """
    body = _cells(header, rows, align)
    lines = [r"\begin{tabular}{" + align + "}", r"\toprule"]
    if groups:
        if sum(span for _, span in groups) != len(header):
            raise ValueError(f"column groups {list(groups)} do not span the {len(header)} columns")
        lines.append(" & ".join(latex_escape(label) if span == 1 else
                                rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(label)}}}" for label, span in groups)
                     + r" \\")
        rules, first = [], 1
        for label, span in groups:
            if label:
                rules.append(rf"\cmidrule(lr){{{first}-{first + span - 1}}}")
            first += span
        lines.append(" ".join(rules))
    lines += [_latex_row([Cell(h) for h in header]), r"\midrule", *(_latex_row(row) for row in body),
              r"\bottomrule", r"\end{tabular}"]
    if caption is not None:
        lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}", *lines, r"\end{table}"]
    return "\n".join(lines)


__all__ = ["Cell", "markdown", "latex", "latex_escape", "ALIGNMENTS"]
