"""Tables for people: text in a terminal, HTML in a notebook.

Every lab and notebook lays out its rows through :func:`as_table` and :class:`Table`;
:class:`Record` gives a frozen dataclass a ``field  value`` text form and an HTML form.
Numbers are right-aligned, ``None`` shows as ``-``, integers in fields named ``*_bytes``
in binary units (:func:`human_bytes`).

Examples
--------
>>> print(as_table([{"vm": "web", "vcpus": 2}, {"vm": "db", "vcpus": 16}]))
vm   vcpus
---  -----
web      2
db      16
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from kvmlab.errors import ScenarioError

__all__ = ["HIDDEN", "Record", "Table", "as_table", "human_bytes"]

LONG_CELL = 60
"""Cells longer than this many characters wrap in HTML tables."""
HIDDEN = {"show": False}
"""Field metadata that keeps a field out of text, HTML and tables."""


class Record:
    """Mixin giving the dataclasses below a text form (``print``) and an HTML form (Jupyter)."""

    VIRSH: ClassVar[str] = ""

    def __str__(self) -> str:
        shown = _shown_fields(self)
        width = max((len(f.name) for f in shown), default=0)
        lines = []
        for f in shown:
            value = getattr(self, f.name)
            if _is_record_sequence(value):
                lines.append(f"{f.name}:")
                lines.extend("  " + line for line in as_table(value).splitlines())
            else:
                lines.append(f"{f.name:<{width}}  {_cell(value, f.name)}".rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = []
        for f in _shown_fields(self):
            value = getattr(self, f.name)
            if _is_record_sequence(value):
                inner = Table(value)._repr_html_() if value else "<em>(none)</em>"
            else:
                inner = html.escape(_cell(value, f.name))
            rows.append(f"<tr><th style='text-align:left'>{html.escape(f.name)}</th>"
                        f"<td style='text-align:left'>{inner}</td></tr>")
        caption = _caption(self.VIRSH, type(self).__name__)
        return f"<table>{caption}<tbody>{''.join(rows)}</tbody></table>"


def _shown_fields(record: Any) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(record) if f.metadata.get("show", True)]


def _is_record_sequence(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and bool(value) and all(
        dataclasses.is_dataclass(v) and not isinstance(v, type) for v in value)


def _caption(virsh: str, kind: str) -> str:
    text = f"{kind} (like <code>{html.escape(virsh)}</code>)" if virsh else kind
    return f"<caption style='text-align:left'>{text}</caption>"


def human_bytes(size_bytes: int) -> str:
    """Format a byte count the way ``virsh pool-list --details`` does (powers of 1024).

    Examples
    --------
    >>> human_bytes(107374182400), human_bytes(512), human_bytes(1536)
    ('100.00 GiB', '512 B', '1.50 KiB')
    """
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{size_bytes} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _printable(text: str) -> str:
    """Escape anything that would break a one-line cell (newlines, tabs, control characters)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def _cell(value: Any, name: str = "") -> str:
    """The text of one table cell; ``name`` is the field name (``*_bytes`` get units)."""
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int) and name.endswith("_bytes"):
        text = human_bytes(value)
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (tuple, list, frozenset, set)):
        items = [getattr(v, "name", v) if dataclasses.is_dataclass(v) else v for v in value]
        text = ", ".join(_cell(v) for v in items) if items else "-"
    else:
        text = str(value)
    return _printable(text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _columns(rows: Sequence[Any], columns: Sequence[str] | None) -> list[str]:
    available: list[str] = []
    if rows:
        first = rows[0]
        if dataclasses.is_dataclass(first) and not isinstance(first, type):
            for row in rows:
                if type(row) is not type(first):
                    raise ScenarioError(
                        "all rows of a table must be of one kind: got "
                        f"{type(first).__name__} and {type(row).__name__}")
            available = [f.name for f in _shown_fields(first)]
        elif all(isinstance(row, Mapping) for row in rows):
            for row in rows:
                available.extend(str(k) for k in row if str(k) not in available)
        else:
            raise ScenarioError("table rows must be dataclass instances or mappings, got "
                                f"{type(first).__name__}")
    if columns is None:
        return available
    if rows:
        unknown = [c for c in columns if c not in available]
        if unknown:
            raise ScenarioError(f"unknown column(s) {unknown}; the rows have {available}")
    return list(columns)


def _value(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name)


def _layout(rows: Sequence[Any], columns: Sequence[str] | None
            ) -> tuple[list[str], list[list[str]], list[bool]]:
    names = _columns(rows, columns)
    values = [[_value(row, n) for n in names] for row in rows]
    cells = [[_cell(v, n) for v, n in zip(vals, names, strict=True)] for vals in values]
    right = [
        any(vals[j] is not None for vals in values)
        and all(_is_number(vals[j]) for vals in values if vals[j] is not None)
        for j in range(len(names))
    ]
    return names, cells, right


def as_table(rows: Iterable[Any], columns: Sequence[str] | None = None) -> str:
    """Lay out dataclass instances (or mappings) as a fixed-width text table.

    One line of column names, one line of dashes as wide as each column, then one line per
    row; columns are separated by two spaces and start at the same offset on every line.
    Numbers are right-aligned, text left-aligned; ``None`` shows as ``-``, booleans as
    ``yes``/``no``, integers in fields named ``*_bytes`` in binary units (``100.00 GiB``).
    Trailing blanks are trimmed, so lines may be shorter than the line of dashes.

    Parameters
    ----------
    rows : iterable of dataclass instances (all of one kind) or of mappings
    columns : sequence of str, optional
        The columns to show, in order; by default every field (or key) of the rows.

    Returns
    -------
    str
        The table, or ``'(none)'`` when there are no rows and no columns were named.

    Raises
    ------
    ScenarioError
        When rows are of mixed kinds, are neither dataclasses nor mappings, or a named
        column does not exist.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Vm:
    ...     name: str
    ...     vcpus: int
    ...     running: bool
    >>> print(as_table([Vm("web", 2, True), Vm("database", 16, False)]))
    name      vcpus  running
    --------  -----  -------
    web           2  yes
    database     16  no
    >>> as_table([])
    '(none)'
    """
    rows = list(rows)
    names, cells, right = _layout(rows, columns)
    if not names:
        return "(none)"
    widths = [max([len(n), *(len(row[j]) for row in cells)]) for j, n in enumerate(names)]

    def line(texts: Sequence[str]) -> str:
        triples = zip(texts, widths, right, strict=True)
        parts = [t.rjust(w) if r else t.ljust(w) for t, w, r in triples]
        return "  ".join(parts).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths]), *map(line, cells)])


class Table:
    """A list of rows that prints as :func:`as_table` and shows as HTML in a notebook.

    Parameters
    ----------
    rows : iterable of dataclass instances or mappings
    columns : sequence of str, optional
        The columns to show (default: all).
    title : str, optional
        A caption for the HTML form; by default the ``virsh`` equivalent of the rows.

    Examples
    --------
    >>> table = Table([{"name": "default", "bridge": "virbr0", "active": True}],
    ...               title="virsh net-list --all")
    >>> table
    name     bridge  active
    -------  ------  ------
    default  virbr0  yes
    >>> len(table), table.title
    (1, 'virsh net-list --all')
    >>> "<th>bridge</th>" in table._repr_html_()
    True
    """

    def __init__(self, rows: Iterable[Any], columns: Sequence[str] | None = None,
                 title: str | None = None) -> None:
        self.rows: tuple[Any, ...] = tuple(rows)
        self.columns: list[str] = _columns(self.rows, columns)
        virsh = getattr(self.rows[0], "VIRSH", "") if self.rows else ""
        self.title: str = title if title is not None else virsh

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> Any:
        return self.rows[index]

    def __str__(self) -> str:
        return as_table(self.rows, self.columns)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        caption = (f"<caption style='text-align:left'><code>{html.escape(self.title)}</code>"
                   "</caption>" if self.title else "")
        if not self.rows:
            return f"<table>{caption}<tbody><tr><td><em>(none)</em></td></tr></tbody></table>"
        names, cells, right = _layout(self.rows, self.columns)

        def cell(tag: str, text: str, is_right: bool) -> str:
            align = "right" if is_right else "left"
            # a long cell (an error message) wraps in a column of its own width, top-aligned,
            # instead of stretching the table or leaving a tall empty row
            wrap = (";vertical-align:top;white-space:normal;min-width:20em;max-width:40em"
                    if len(text) > LONG_CELL else "")
            return f"<{tag} style='text-align:{align}{wrap}'>{html.escape(text)}</{tag}>"

        head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        body = "".join(
            "<tr>" + "".join(cell("td", t, r) for t, r in zip(row, right, strict=True)) + "</tr>"
            for row in cells)
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
