"""Subject access and portability: everything the lakehouse holds about one person, as JSON lines."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from marketlake.config import Settings
from marketlake.privacy.subjects import (
    PERSONAL_LAYERS,
    Request,
    conditions_by_table,
    identifier_exprs,
    layer_tables,
    resolve,
)
from marketlake.tables import read_delta

RECORDS = "records.jsonl"
MANIFEST = "manifest.json"
# Raw layer first: what arrived, then what was made of it.
EXPORT_ORDER = ("bronze", "quarantine", "silver", "gold")


def subject_rows(spark: SparkSession, settings: Settings, request: Request, key: bytes) -> list[tuple[str, list[str]]]:
    """(layer.table, the person's rows as JSON objects) for every table holding any, in EXPORT_ORDER."""
    locations = {layer: str(settings.database_location(layer)) for layer in PERSONAL_LAYERS}
    tables = layer_tables(spark, locations)
    exprs = identifier_exprs(settings.privacy)
    (subject,) = resolve(spark, tables, exprs, [request])
    conditions = conditions_by_table(spark, tables, [subject], key, exprs, settings.domains())
    out = []
    for name in sorted(conditions, key=lambda n: (EXPORT_ORDER.index(n.split(".", 1)[0]), n)):
        ref, (condition,) = conditions[name]
        assert condition is not None
        rows = read_delta(spark, ref.path).where(condition).toJSON().collect()
        if rows:
            out.append((name, sorted(rows)))
    return out


def write_export(out: Path, request: Request, found: Sequence[tuple[str, list[str]]]) -> dict[str, int]:
    """records.jsonl ({"table": ..., "row": {...}} per line) and manifest.json in `out`, each replaced whole (a
    reader never sees half a file); returns rows per table."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {table: len(rows) for table, rows in found}
    lines = [
        json.dumps({"table": table, "row": json.loads(row)}, sort_keys=True) for table, rows in found for row in rows
    ]
    manifest = {
        "request": {"kind": request.kind, "value": request.value},
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": sum(counts.values()),
        "tables": counts,
        "records": RECORDS,
        "about": "every row held about this person, per table of each layer (bronze: as received; silver and gold:"
        " cleaned, with emails, phones and addresses as keyed hashes)",
    }
    _replace(out / RECORDS, "".join(f"{line}\n" for line in lines))
    _replace(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return counts


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
