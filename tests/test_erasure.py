"""Erasure and subject access on a lakehouse through gold: one commerce customer and one exchange user, found and
checked by an independent oracle (plain Python over every row of every table: a row is a person's when any of its
values carries one of their identifiers), never by the erasure's own conditions."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import JobRunners, WarmJobs, delta_tables

LAYERS = ("bronze", "silver", "quarantine", "gold", "ops")
DEV_KEY = b"marketlake-development-key-not-a-secret"  # conf/base.yaml privacy.dev_key: the tests set no key
WORD = re.compile(r"[A-Za-z0-9@._+-]+")
MODEL_TABLES = ("regret_scores", "churn_scores")  # written here as scoring writes them (regret with deletion vectors)


def rows_of(spark: SparkSession, path: str, version: int | None = None) -> list[str]:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path).toJSON().collect()


def snapshot(spark: SparkSession, lh: Path, layers: tuple[str, ...] = LAYERS) -> dict[str, list[str]]:
    """Every row of every table of the layers, as JSON, by layer.table."""
    tables = {f"{layer}.{name}": path for layer in layers for name, path in delta_tables(lh, layer).items()}
    return {name: rows_of(spark, path) for name, path in tables.items()}


def versions(lh: Path) -> dict[str, int]:
    """Each table's latest version: its newest commit file in _delta_log."""
    return {
        f"{layer}.{name}": max(int(p.stem) for p in Path(path, "_delta_log").glob("*.json"))
        for layer in LAYERS
        for name, path in delta_tables(lh, layer).items()
    }


def words(text: str) -> set[str]:
    """The words of a row's JSON (its strings unescaped once more: bronze's _raw_record is JSON inside JSON)."""
    return {w.strip(".").lower() for w in WORD.findall(text.replace('\\"', '"'))}


@dataclass
class Person:
    tokens: set[str]  # lower-cased: emails, ids, order references, session ids, keyed hashes

    def holds(self, row: str) -> bool:
        return not self.tokens.isdisjoint(words(row))


def canonical(row: Any) -> str:
    return json.dumps(row, sort_keys=True)


def keyed(value: str) -> str:
    return hmac.new(DEV_KEY, value.strip().lower().encode(), hashlib.sha256).hexdigest()


def commerce_person(bronze: dict[str, list[dict[str, Any]]]) -> tuple[str, Person]:
    """The customer with the most orders (both platforms counted), and every identifier that names them: their
    emails, customer id, orders (with and without platform), the web sessions of their id or of their orders."""
    orders: dict[str, list[tuple[str, str, str | None]]] = {}  # customer id -> (order id, ref, session)
    emails: dict[str, set[str]] = {}
    for r in bronze["commerce_orders_shopify"]:
        if r.get("customer") and r.get("id"):
            customer = json.loads(r["customer"])
            session = json.loads(r["client_details"]).get("session_id") if r.get("client_details") else None
            orders.setdefault(customer["id"], []).append((f"shopify:{r['id']}", r["id"], session))
            emails.setdefault(customer["id"], set()).add((customer.get("email") or r["email"]).lower())
    for r in bronze["commerce_orders_amazon"]:
        if r.get("BuyerInfo") and r.get("AmazonOrderId"):
            cid = json.loads(r["BuyerInfo"])["BuyerCustomerId"]
            orders.setdefault(cid, []).append((f"amazon:{r['AmazonOrderId']}", r["AmazonOrderId"], None))
            emails.setdefault(cid, set()).add(r["BuyerEmail"].lower())
    cid = max(sorted(orders), key=lambda c: (len({p.split(":")[0] for p, _, _ in orders[c]}), len(orders[c])))
    mine = {r["email"].lower() for r in bronze["commerce_customers"] if r["customer_id"] == cid} | emails[cid]
    sessions = {s for _, _, s in orders[cid] if s} | {
        r["session_id"] for r in bronze["commerce_web_sessions"] if r.get("customer_id") == cid
    }
    tokens = {cid, *mine, *sessions, *(o for o, _, _ in orders[cid]), *(ref for _, ref, _ in orders[cid])}
    tokens |= {keyed(e) for e in mine}
    return cid, Person({t.lower() for t in tokens})


def exchange_person(bronze: dict[str, list[dict[str, Any]]]) -> tuple[str, Person]:
    trades = Counter(r["user_id"] for r in bronze["exchange_trades"] if r.get("user_id"))
    logins = {r["user_id"] for r in bronze["exchange_logins"] if r.get("user_id")}
    uid = max(sorted(u for u in trades if u in logins), key=lambda u: trades[u])
    mine = {r["email"].lower() for r in bronze["exchange_users"] if r["user_id"] == uid}
    return uid, Person({uid.lower(), *mine, *(keyed(e) for e in mine)})


@dataclass
class Lake:
    root: Path
    jobs: WarmJobs
    customer: str
    user: str
    people: list[Person]
    before: dict[str, list[str]]
    raw: set[str]  # their emails and phones as they arrived

    def holds(self, row: str) -> bool:
        return any(p.holds(row) for p in self.people)


@pytest.fixture(scope="module")
def lake(spark: SparkSession, privacy_lakehouse: Path, warm_jobs: JobRunners) -> Iterator[Lake]:
    """The privacy lakehouse with, added: a malformed customers line naming the chosen customer (bronze keeps it,
    silver quarantines it), and two model tables written as the scoring job writes them, one with deletion vectors
    on; then the two people and a snapshot of every table."""
    lh, jobs = privacy_lakehouse, warm_jobs(privacy_lakehouse)
    bronze = {
        name: [json.loads(r) for r in rows_of(spark, path)]
        for name, path in delta_tables(lh, "bronze").items()
        if name.startswith(("commerce_", "exchange_"))
    }
    cid, customer = commerce_person(bronze)
    uid, user = exchange_person(bronze)
    email = sorted(t for t in customer.tokens if "@" in t)[0]
    extra = lh / "landing" / "commerce" / "customers" / "date=2026-03-04" / "customers-2026-03-04-resent.csv"
    header = next((lh / "landing" / "commerce" / "customers").glob("date=*/*.csv")).read_text().splitlines()[0]
    extra.write_text(f"{header}\n{cid.upper()},{email},+1-555\nC09999999,new.person@example.com,,N,P,,,,,,")
    jobs("bronze_ingest.py", "--domain", "commerce", "--entity", "customers")
    jobs("silver_build.py", "--domain", "commerce")
    model = F.lit("test").alias("model_name")
    scores = (
        spark.read.format("delta")
        .load(str(lh / "silver" / "commerce_orders"))
        .select(F.col("event_date").alias("purchase_date"), "order_id", "customer_id", model, F.lit(0.5).alias("score"))
    )
    path = str(lh / "gold" / MODEL_TABLES[0])
    DeltaTable.create(spark).location(path).addColumns(scores.schema).property(
        "delta.enableDeletionVectors", "true"
    ).execute()
    scores.write.format("delta").mode("append").save(path)
    churn = spark.read.format("delta").load(str(lh / "silver" / "exchange_users"))
    as_of = F.lit("2026-03-04").cast("date").alias("as_of_date")
    churn.select(as_of, "user_id", model, F.lit(0.3).alias("churn_probability")).write.format("delta").partitionBy(
        "as_of_date"
    ).save(str(lh / "gold" / MODEL_TABLES[1]))
    raw = {
        r[field]
        for table, key, person in (("commerce_customers", "customer_id", cid), ("exchange_users", "user_id", uid))
        for r in bronze[table]
        if r.get(key) == person
        for field in ("email", "phone")
        if r.get(field)
    }
    yield Lake(lh, jobs, cid, uid, [customer, user], snapshot(spark, lh), raw)
    for table in MODEL_TABLES:  # written by this module only: the next module on this lakehouse starts without them
        shutil.rmtree(lh / "gold" / table)


def traces(lake: Lake, tables: dict[str, list[str]]) -> dict[str, int]:
    return {t: n for t, rows in tables.items() if (n := sum(lake.holds(r) for r in rows))}


def test_the_oracle_finds_both_people_in_every_layer(lake: Lake) -> None:
    found = traces(lake, lake.before)
    layers = {t.split(".")[0] for t in found}
    assert {"bronze", "silver", "quarantine", "gold"} <= layers, found
    for table in (
        "bronze.commerce_customers",
        "bronze.commerce_orders_shopify",
        "bronze.exchange_trades",
        "silver.commerce_orders",
        "silver.commerce_order_lines",
        "silver.exchange_logins",
        "gold.commerce_rfm",
        "gold.exchange_rfm",
        "gold.exchange_churn_risk",
        "gold.regret_scores",
        "gold.churn_scores",
        "quarantine.commerce",
    ):
        assert found.get(table, 0) > 0, table


def test_a_subject_export_holds_exactly_the_persons_rows(lake: Lake, tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = lake.jobs("subject_export.py", "--customer-id", lake.customer, "--out", str(out))
    assert "rows from" in result.stdout
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    customer = lake.people[0]
    expected = {
        t: [json.loads(r) for r in rows if customer.holds(r)]
        for t, rows in lake.before.items()
        if not t.startswith("ops.")
    }
    got: dict[str, list[Any]] = {}
    for record in records:
        got.setdefault(record["table"], []).append(record["row"])
    assert {t: sorted(rows, key=canonical) for t, rows in got.items()} == {
        t: sorted(rows, key=canonical) for t, rows in expected.items() if rows
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tables"] == {t: len(rows) for t, rows in expected.items() if rows}
    assert manifest["rows"] == len(records)


@pytest.fixture(scope="module")
def erased(spark: SparkSession, lake: Lake) -> dict[str, Any]:
    """A dry run, the erasure, silver's next run, and the purge retaining 0 hours."""
    args = ("--customer-id", lake.customer, "--user-id", lake.user, "--requested-by", "dpo", "--ticket", "T-1")
    before = versions(lake.root)
    dry = lake.jobs("erase.py", *args, "--dry-run")
    after_dry = versions(lake.root)
    erase = lake.jobs("erase.py", *args)
    after = snapshot(spark, lake.root)
    erased_versions = versions(lake.root)
    lake.jobs("silver_build.py", "--domain", "all")
    purge = lake.jobs("erase.py", "--purge", "--retention-hours", "0")
    return {
        "before": before,
        "dry": dry.stdout,
        "after_dry": after_dry,
        "erase": erase.stdout,
        "after": after,
        "versions": erased_versions,
        "purge": purge.stdout,
    }


def test_erasure_removes_exactly_the_persons_rows_from_every_table(lake: Lake, erased: dict[str, Any]) -> None:
    assert erased["after_dry"] == erased["before"]  # the dry run wrote nothing
    after = erased["after"]
    for table, rows in lake.before.items():
        if table.startswith("ops."):
            continue
        kept = [r for r in rows if not lake.holds(r)]
        assert sorted(after[table]) == sorted(kept), table  # theirs gone, everyone else's rows as they were
    assert traces(lake, {t: r for t, r in after.items()}) == {}  # ops too: the audit and suppression hold no trace


def test_the_audit_records_each_request_with_rows_and_versions(
    spark: SparkSession, lake: Lake, erased: dict[str, Any]
) -> None:
    audit = [json.loads(r) for r in rows_of(spark, str(lake.root / "ops" / "erasure_audit"))]
    erasures = sorted((r for r in audit if r["event"] == "erase"), key=lambda r: r["request_kind"])
    assert [(r["request_kind"], r["outcome"], r["requested_by"], r["ticket"]) for r in erasures] == [
        ("customer_id", "erased", "dpo", "T-1"),
        ("user_id", "erased", "dpo", "T-1"),
    ]
    for person, record in zip(lake.people, erasures, strict=True):
        expected = {
            t: n for t, rows in lake.before.items() if (n := sum(person.holds(r) for r in rows)) and t[:4] != "ops."
        }
        assert {t["table"]: t["rows_removed"] for t in record["tables"]} == expected
        assert record["rows_removed"] == sum(expected.values())
        assert {t["table"]: t["version"] for t in record["tables"]} == {t: erased["versions"][t] for t in expected}
    purges = [r for r in audit if r["event"] == "purge"]
    assert [(r["outcome"], r["purge_retention_hours"]) for r in purges] == [("purged", 0.0)]


def test_after_the_purge_no_earlier_version_or_change_feed_returns_them(
    spark: SparkSession, lake: Lake, erased: dict[str, Any]
) -> None:
    had = {t for t, rows in lake.before.items() if any(lake.holds(r) for r in rows)}
    checked = unreadable = 0
    for table in sorted(had):
        layer, name = table.split(".")
        path = str(lake.root / layer / name)
        for version in range(erased["versions"][table]):
            checked += 1
            try:
                rows = rows_of(spark, path, version)
            except Exception:  # its files are gone: nothing to return
                unreadable += 1
                continue
            assert not any(lake.holds(r) for r in rows), (table, version)
        if layer == "bronze":  # the change feed silver reads keeps deleted rows until the purge
            try:
                changes = (
                    spark.read.format("delta")
                    .option("readChangeFeed", "true")
                    .option("startingVersion", 0)
                    .load(path)
                    .toJSON()
                    .collect()
                )
            except Exception:
                continue
            assert not any(lake.holds(r) for r in changes), table
    assert checked > len(had) and unreadable > 0


def test_after_the_purge_no_file_holds_their_email_or_phone(lake: Lake, erased: dict[str, Any]) -> None:
    """Byte for byte, every file outside the landing zone: data files, Delta logs (an erasure's own commits, the
    statistics of every file ever added), checkpoints, the catalog."""
    assert len(lake.raw) >= 3
    needles = [s.lower().encode() for s in lake.raw]
    held = []
    for path in sorted(lake.root.rglob("*")):
        if path.is_file() and "landing" not in path.relative_to(lake.root).parts:
            data = path.read_bytes().lower()
            held += [(str(path.relative_to(lake.root)), n.decode()) for n in needles if n in data]
    assert held == []


def test_rerunning_the_erasure_changes_nothing_and_an_unknown_person_is_reported(
    spark: SparkSession, lake: Lake, erased: dict[str, Any]
) -> None:
    before = versions(lake.root)
    again = lake.jobs("erase.py", "--customer-id", lake.customer, "--user-id", lake.user)
    assert again.stdout.count("already erased") == 2, again.stdout
    assert versions(lake.root) == before
    nobody = lake.jobs("erase.py", "--subject-email", "Nobody@Example.com")
    assert "not found" in nobody.stdout
    audit = [json.loads(r) for r in rows_of(spark, str(lake.root / "ops" / "erasure_audit"))]
    assert [r["outcome"] for r in audit if r.get("request_kind") == "email"] == ["not_found"]


def test_reingesting_the_original_landing_files_does_not_bring_them_back(
    spark: SparkSession, lake: Lake, erased: dict[str, Any], tmp_path: Path
) -> None:
    resent = tmp_path / "resent"
    for domain in ("commerce", "exchange"):
        shutil.copytree(lake.root / "landing" / domain, resent / domain)
    result = lake.jobs("bronze_ingest.py", "--domain", "all", "--landing", str(resent))
    assert traces(lake, snapshot(spark, lake.root, ("bronze",))) == {}  # and silver reads nothing but bronze
    runs = [json.loads(r) for r in rows_of(spark, str(lake.root / "ops" / "bronze_ingest_runs"))]
    latest = [r for r in runs if r["run_started_at"] == max(x["run_started_at"] for x in runs)]
    suppressed = {r["table_name"]: r["rows_suppressed"] for r in latest if r["rows_suppressed"]}
    theirs = {
        t.split(".")[1]: sum(lake.holds(r) for r in rows)
        for t, rows in lake.before.items()
        if t.startswith("bronze.") and any(lake.holds(r) for r in rows)
    }
    assert suppressed == {f"bronze.{t}": n for t, n in theirs.items()}, result.stderr[-3000:]
    assert all(r["lines_read"] == r["rows_written"] + (r["rows_suppressed"] or 0) for r in latest)
