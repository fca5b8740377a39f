"""Everything the lakehouse holds about one person, for an access or portability request: every row of every
table of every layer that names them, as JSON lines with the table each row came from (records.jsonl), and a
manifest of rows per table (manifest.json), written to --out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from marketlake.cli import base_parser, run
from marketlake.config import load_settings
from marketlake.errors import InputError
from marketlake.formatting import format_rows
from marketlake.privacy.export import MANIFEST, RECORDS, subject_rows, write_export
from marketlake.privacy.subjects import collect_requests
from marketlake.session import get_spark
from marketlake.silver.privacy import pii_key


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.conf_env)
    requests = collect_requests(args.subject_email, args.customer_id, args.user_id, None, "")
    if len(requests) != 1:
        raise InputError("an export is for one person: give exactly one --subject-email, --customer-id or --user-id")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {args.out} is a file, not a folder")
    spark = get_spark(settings, "marketlake-subject-export", args.master)
    (request,) = requests
    counts = write_export(out, request, subject_rows(spark, settings, request, pii_key(settings.privacy)))
    if not counts:
        print(f"nothing held about this {request.kind}: {out / RECORDS} is empty")
        return 0
    rows = [{"table": t, "rows": n} for t, n in counts.items()]
    print(format_rows(rows, ["table", "rows"]))
    print(f"{sum(counts.values())} rows from {len(counts)} tables in {out / RECORDS} (manifest: {out / MANIFEST})")
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--subject-email", action="append", default=[], help="the person's email (both domains)")
    p.add_argument("--customer-id", action="append", default=[], help="a commerce customer id")
    p.add_argument("--user-id", action="append", default=[], help="an exchange user id")
    p.add_argument("--out", required=True, help="folder to write records.jsonl and manifest.json to")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
