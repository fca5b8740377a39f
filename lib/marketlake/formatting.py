"""Rows as text (an aligned table, JSON lines or CSV): what jobs print, whichever engine computed the rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence


def format_rows(rows: Sequence[dict[str, object]], columns: Sequence[str], fmt: str = "table") -> str:
    """Render rows as an aligned text table, JSON lines or CSV."""
    if fmt == "json":
        return "\n".join(json.dumps(r, default=str, ensure_ascii=False) for r in rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    cells = [[("NULL" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(_is_number(row[i]) for row in cells) and bool(cells) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True))

    return "\n".join([line(list(columns)), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == "NULL"
    return True
