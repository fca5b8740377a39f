"""A job as users run it, from other shells: every process lives in UTC, so the silver job run from a shell in
Asia/Kolkata (UTC+5:30) or America/New_York (UTC-5) keeps and quarantines exactly the rows a UTC clock says it
must (written out below from the input, not taken from another run) and stamps its run with the true time (a
naive "now" handed to Spark would be read in the local zone and move the not-in-future limit by hours). The
Kolkata run also reads its configuration from MARKETLAKE_CONF_DIR with its own --conf-env (which turns Spark's
event log on) and its own PII key, which must appear in no plan and no event."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from marketlake.config import CONF_DIR, Settings
from marketlake.silver import conform
from marketlake.silver.spec import load_all
from tests.conftest import run_job
from tests.frames import bronze_frame

ZONES = ("Asia/Kolkata", "America/New_York")  # either side of UTC
SECRET = "pii-key-7f3a9c-never-printed"


def key_traces(key: bytes) -> list[str]:
    """What would give the key away in a plan: the key, its hex, and HMAC's inner and outer pads (key XOR
    0x36 / 0x5c), which a hash written with Spark expressions carries as literals."""
    block = key.ljust(64, b"\0")
    pads = [bytes(b ^ 0x36 for b in block).hex(), bytes(b ^ 0x5C for b in block).hex()]
    return [key.decode(), key.hex(), *pads, *[p.upper() for p in pads]]


@pytest.fixture(scope="module")
def runs(spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """silver_build.py --domain exchange over one bronze users table, once per zone, each in its own lakehouse."""
    now = datetime.now(UTC).replace(microsecond=0)
    hours = {"U-PAST": -2, "U-FUTURE": 2, "U-OLD": -240}
    registered = {user: now + timedelta(hours=h) for user, h in hours.items()}
    records = [
        {"user_id": user, "email": f"{user}@example.com", "tier": "basic", "status": "active",
         "registered_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "updated_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
        for user, at in sorted(registered.items())
    ]  # fmt: skip
    users = bronze_frame(spark, settings.sources["exchange"]["users"], records, now.date(), now)
    base = tmp_path_factory.mktemp("zones")
    seed = base / "seed" / "bronze" / "exchange_users"
    users.write.format("delta").save(str(seed))
    conf = base / "conf"
    shutil.copytree(CONF_DIR, conf)
    events = base / "events"
    events.mkdir()
    (conf / "audit.yaml").write_text(
        "spark:\n  conf:\n    spark.eventLog.enabled: 'true'\n    spark.eventLog.compress: 'false'\n"
        f"    spark.eventLog.dir: 'file://{events}'\n"
    )
    audit = {"MARKETLAKE_CONF_DIR": str(conf), "MARKETLAKE_PII_KEY": SECRET}
    out = {}
    for zone in ZONES:
        lakehouse = base / zone.replace("/", "_")
        shutil.copytree(seed, lakehouse / "bronze" / "exchange_users")
        extra = ("--conf-env", "audit") if zone == "Asia/Kolkata" else ()
        result = run_job(
            "silver_build.py", "--domain", "exchange", "--master", "local[1]", *extra,
            env={"TZ": zone, "MARKETLAKE_LAKEHOUSE": str(lakehouse), **(audit if extra else {})},
        )  # fmt: skip
        assert "skipped silver.exchange_trades" in result.stdout, result.stdout
        out[zone] = lakehouse
    return {**out, "now": now, "events": events, "registered": registered}  # type: ignore[dict-item]


def _outcome(spark: SparkSession, lakehouse: Path) -> tuple[list[tuple], list[tuple]]:
    silver = spark.read.format("delta").load(str(lakehouse / "silver" / "exchange_users"))
    kept = sorted(tuple(r) for r in silver.select("user_id", "registered_at", "updated_at").collect())
    quarantine = spark.read.format("delta").load(str(lakehouse / "quarantine" / "exchange"))
    rejected = sorted((json.loads(r["record"])["user_id"], tuple(r["failed_rules"])) for r in quarantine.collect())
    return kept, rejected


def test_a_job_keeps_the_same_rows_in_any_local_time_zone(spark: SparkSession, runs: dict[str, Path]) -> None:
    registered: dict[str, datetime] = runs["registered"]  # type: ignore[assignment]
    # two hours ago and ten days ago are kept with their instants unchanged (read back as UTC wall-clock times);
    # two hours ahead of the true time is in the future in every zone
    at = {user: registered[user].replace(tzinfo=None) for user in ("U-OLD", "U-PAST")}
    kept = [(user, at[user], at[user]) for user in ("U-OLD", "U-PAST")]
    rejected = [("U-FUTURE", ("registered_not_in_future",))]
    for zone in ZONES:
        assert _outcome(spark, runs[zone]) == (kept, rejected), zone


def test_run_timestamps_are_the_true_utc_time_in_any_zone(spark: SparkSession, runs: dict[str, Path]) -> None:
    now: datetime = runs["now"]  # type: ignore[assignment]
    for zone in ZONES:
        started = (
            spark.read.format("delta")
            .load(str(runs[zone] / "ops" / "silver_runs"))
            .agg(F.min("run_started_at"))
            .first()[0]
        )
        assert abs(started.replace(tzinfo=UTC) - now) < timedelta(minutes=10), (zone, started, now)


def test_the_pii_key_is_in_no_plan_and_no_event_log(spark: SparkSession, runs: dict[str, Path]) -> None:
    logs = [p for p in runs["events"].rglob("*") if p.is_file()]  # type: ignore[union-attr]
    assert logs, "the event log is on in the audit environment"
    text = "".join(p.read_text(errors="replace") for p in logs)
    assert "SQLExecutionStart" in text and "exchange_users" in text  # the plans of the run are in it
    hashed = spark.read.format("delta").load(str(runs["Asia/Kolkata"] / "silver" / "exchange_users"))
    expected = hmac.new(SECRET.encode(), b"u-past@example.com", hashlib.sha256).hexdigest()
    assert expected in {r["email_hash"] for r in hashed.collect()}  # the run did hash with this key
    for trace in key_traces(SECRET.encode()):
        assert trace not in text


def test_the_pii_key_is_in_no_explain_output(spark: SparkSession, settings: Settings) -> None:
    key = b"another-key-0c1d"
    users = bronze_frame(spark, settings.sources["exchange"]["users"], [{"user_id": "U1", "email": "a@b.co"}],
                         datetime(2026, 3, 1, tzinfo=UTC).date(), datetime(2026, 3, 1, tzinfo=UTC))  # fmt: skip
    spec = settings.sources["exchange"]["users"]
    specs, _ = load_all(CONF_DIR, settings.sources)
    (table,) = [s for s in specs["exchange"] if s.name == "users"]
    conformed = users.withColumn("_retry", F.lit(False)).transform(conform.conform_columns(spec, table.columns, key))
    plans = [conformed._jdf.queryExecution().toString()]
    conformed.createOrReplaceTempView("conformed_users")
    plans += [r[0] for r in spark.sql("EXPLAIN EXTENDED SELECT * FROM conformed_users").collect()]
    assert conformed.select("email_hash").first()[0] == hmac.new(key, b"a@b.co", hashlib.sha256).hexdigest()
    for trace in key_traces(key):
        assert all(trace not in plan for plan in plans), trace
