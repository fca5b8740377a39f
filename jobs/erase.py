"""Erase people from every layer (the right to be forgotten): bronze rows and raw lines, quarantined records,
silver rows and every gold table that names them; their identifiers join the suppression list bronze ingestion
consults, and every request is recorded in ops.erasure_audit (keyed hashes only). --purge then vacuums the files
older versions read, so that time travel cannot bring anyone back (README "Privacy")."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from marketlake.cli import base_parser, run
from marketlake.config import load_settings
from marketlake.errors import InputError
from marketlake.formatting import format_rows
from marketlake.privacy.erase import Outcome, erase, plan_erasure, purge, purge_retention_hours
from marketlake.privacy.subjects import collect_requests
from marketlake.session import get_spark
from marketlake.silver.privacy import pii_key
from marketlake.tables import ensure_databases

log = logging.getLogger("marketlake.erase")
SAID = {
    "erased": "erased",
    "already_erased": "already erased: nothing of them is left, nothing written",
    "not_found": "not found: the lakehouse holds nothing about them (recorded in the audit)",
}


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.conf_env)
    text = None
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise InputError(f"--file {args.file}: no such file")
        text = path.read_text(encoding="utf-8")
    named = bool(args.subject_email or args.customer_id or args.user_id or args.file)
    if not named and not args.purge:
        raise InputError("name at least one person (--subject-email, --customer-id, --user-id, --file) or --purge")
    requests = (
        collect_requests(args.subject_email, args.customer_id, args.user_id, text, str(args.file)) if named else []
    )
    hours = purge_retention_hours(settings.privacy) if args.retention_hours is None else args.retention_hours
    if hours < 0:
        raise InputError(f"--retention-hours must be >= 0, not {hours:g}")
    spark = get_spark(settings, "marketlake-erase", args.master)
    ensure_databases(spark, settings)
    key = pii_key(settings.privacy)
    requested_by = args.requested_by or getpass.getuser()
    if named:
        plan = plan_erasure(spark, settings, requests, key)
        if args.dry_run:
            print(f"\nDry run: rows that an erasure of {len(requests)} request(s) would delete (nothing changed)")
            rows = [{"table": t.table, "rows": t.total} for t in plan.counts.values()]
            print(format_rows(rows, ["table", "rows"]) if rows else "(no rows hold them)")
            return 0
        erasure_id, outcomes = erase(spark, plan, key, requested_by, args.ticket)
        report(erasure_id, outcomes)
    if args.purge and not args.dry_run:
        result = purge(spark, settings, hours, requested_by, args.ticket)
        files = sum(r.files for r in result.results)
        print(
            f"\nPurge of {result.erasures} erasure(s): VACUUM retaining {hours:g} h of {len(result.results)} tables, "
            f"{files} files deleted"
        )
        for r in result.results:
            if r.held:
                print(f"  {r.table}: not purged yet: {r.held}")
        if result.not_final:
            final = datetime.fromtimestamp(result.not_final[-1], UTC).isoformat(timespec="minutes")
            print(f"  {len(result.not_final)} erasure(s) newer than {hours:g} h: final after a purge from {final} on")
        if any(r.held for r in result.results):
            log.warning("the erasure is not final until the held tables are purged")
            return 1
    return 0


def report(erasure_id: str, outcomes: list[Outcome]) -> None:
    """Per request: what happened, and per table the rows deleted and the Delta version written. Requests are named
    by their position and kind, never by the email or id (logs are kept longer than people are)."""
    print(f"\nErasure {erasure_id}")
    for n, o in enumerate(outcomes, 1):
        what = SAID[o.outcome] if o.outcome != "erased" else f"erased {o.rows} rows from {len(o.tables)} tables"
        print(f"request {n} ({o.subject.request.kind}, subject {o.subject_hash[:12]}): {what}")
        if o.tables:
            rows = [{"table": t, "rows": r, "version": v} for t, r, v in o.tables]
            print(format_rows(rows, ["table", "rows", "version"]))


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--subject-email", action="append", default=[], help="a person's email (both domains)")
    p.add_argument("--customer-id", action="append", default=[], help="a commerce customer id")
    p.add_argument("--user-id", action="append", default=[], help="an exchange user id")
    p.add_argument(
        "--file", default=None, help="requests, one per line: email,VALUE | customer_id,VALUE | user_id,VALUE"
    )
    p.add_argument("--requested-by", default=None, help="who asked, for the audit (default: this user)")
    p.add_argument("--ticket", default=None, help="the request's reference, for the audit")
    p.add_argument("--dry-run", action="store_true", help="count the rows that would go; change nothing")
    p.add_argument("--purge", action="store_true", help="then vacuum what older versions still read (see README)")
    p.add_argument(
        "--retention-hours",
        type=float,
        default=None,
        help="what --purge retains (default: privacy.erasure.purge_retention_hours)",
    )
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
