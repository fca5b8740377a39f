"""Revenue anomalies: the injected flash sale and outage are confirmed by the consensus of the three detectors;
the job writes gold.kpi_anomalies idempotently."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from marketlake.config import CONF_DIR, Settings
from marketlake.errors import InputError
from marketlake.models import anomalies
from marketlake.models.run import detect_anomalies
from marketlake.models.spec import load_models
from marketlake.tables import create_table_if_missing, read_delta
from tests.frames import to_spark
from tests.synthetic import KPIS_SCHEMA, PAIRS_SCHEMA, daily_kpis, pair_daily

CONF = load_models(CONF_DIR)
START, DAYS = date(2026, 1, 1), 56
FLASH_SALE, OUTAGE = START + timedelta(days=12), START + timedelta(days=20)


def test_detect_series_confirms_the_flash_sale_and_the_outage(spark: SparkSession) -> None:
    kpis = to_spark(spark, daily_kpis(DAYS), KPIS_SCHEMA)
    revenue = CONF.anomalies["series"][0]
    series = anomalies.series_frame(kpis, "commerce_revenue", "channel", "revenue_usd", revenue["components"])
    result = anomalies.detect(series, CONF.anomalies).toPandas()
    assert len(result) == 4 * DAYS
    confirmed = result[result["consensus_2of3"]]
    for channel, days in confirmed.groupby("dimension")["date"]:
        assert {FLASH_SALE, OUTAGE} <= set(days), channel
        assert len(set(days) - {FLASH_SALE, OUTAGE}) <= 1, (channel, sorted(days))
    assert set(confirmed["dimension"]) == {"organic", "social", "paid_search", "email"}
    outage = json.loads(
        confirmed[(confirmed["date"] == OUTAGE) & (confirmed["dimension"] == "organic")]["insight"].iloc[0]
    )
    assert outage["direction"] == "drop" and outage["deviation_pct"] < -50
    assert outage["likely_driver"]["component"] in {"orders", "sessions"}
    assert outage["likely_driver"]["change_pct"] < -50
    assert len(outage["detectors"]) >= 2 and set(outage["detectors"]) <= set(anomalies.DETECTORS)
    sale = json.loads(
        confirmed[(confirmed["date"] == FLASH_SALE) & (confirmed["dimension"] == "social")]["insight"].iloc[0]
    )
    assert sale["direction"] == "spike" and sale["deviation_pct"] > 50
    # Only confirmed days carry an insight.
    assert result[~result["consensus_2of3"]]["insight"].isna().all()


def test_a_series_without_shocks_has_no_consensus_all(spark: SparkSession) -> None:
    pairs = to_spark(spark, pair_daily(DAYS), PAIRS_SCHEMA)
    volume = CONF.anomalies["series"][1]
    series = anomalies.series_frame(pairs, "exchange_volume", "pair", "volume_usd", volume["components"])
    result = anomalies.detect(series, CONF.anomalies).toPandas()
    assert not result["consensus_all"].any()
    assert result["consensus_2of3"].sum() <= 2


@pytest.fixture
def kpi_lake(spark: SparkSession, settings: Settings, tmp_path) -> Iterator[tuple[Settings, str]]:  # type: ignore[no-untyped-def]
    db = f"t_{uuid.uuid4().hex[:10]}"
    spark.sql(f"CREATE DATABASE {db} LOCATION '{tmp_path / db}'")
    for name, frame in (
        ("commerce_daily_kpis", to_spark(spark, daily_kpis(DAYS), KPIS_SCHEMA)),
        ("exchange_pair_daily", to_spark(spark, pair_daily(DAYS), PAIRS_SCHEMA)),
    ):
        create_table_if_missing(spark, f"{db}.{name}", frame.schema, ["date"])
        frame.write.format("delta").mode("append").save(str(tmp_path / db / name))
    yield dataclasses.replace(settings, lakehouse_root=tmp_path), db
    spark.sql(f"DROP DATABASE IF EXISTS {db} CASCADE")


def test_job_writes_the_range_once_and_refuses_days_without_kpis(
    spark: SparkSession, kpi_lake: tuple[Settings, str]
) -> None:
    settings, db = kpi_lake
    first, last = START + timedelta(days=10), START + timedelta(days=24)
    run = detect_anomalies(spark, settings, CONF, first, last, db)
    assert run.written and run.rows == (4 + 2) * 15
    table = read_delta(spark, str(settings.database_location(db) / "kpi_anomalies"))
    assert table.agg(F.min("date"), F.max("date")).first() == (first, last)
    # Only 25 days are read here (the data starts on day 0), so the smallest channel is left out of the check.
    assert {(i["date"], i["dimension"]) for i in run.confirmed} >= {
        (str(d), c) for d in (FLASH_SALE, OUTAGE) for c in ("organic", "social", "paid_search")
    }
    again = detect_anomalies(spark, settings, CONF, first, last, db)
    assert not again.written and again.rows == run.rows
    with pytest.raises(InputError, match="no KPI rows for 2026-02-26"):
        detect_anomalies(spark, settings, CONF, last, START + timedelta(days=DAYS), db)
