"""The generator's landing files carry each kind of dirt, drift and replay the issue asks for, and the causal
structure later issues learn from. Checked with plain Python on the files, independently of Spark's parsers."""

from __future__ import annotations

import csv
import json
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from marketlake.config import Settings
from marketlake.generator.params import GeneratorParams
from marketlake.generator.run import generate_landing

DIRTY = {
    "malformed": 0.02,
    "wrong_type": 0.03,
    "missing_required": 0.03,
    "duplicate": 0.03,
    "late": 0.05,
    "late_max_days": 2,
    "unknown_reference": 0.03,
    "non_positive": 0.03,
}


@pytest.fixture(scope="module")
def landing(spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("landing")
    params = GeneratorParams.from_config(
        settings.generator, scale=0.3, days=10, seed=11, dirty=DIRTY, start="2026-05-01"
    )
    generate_landing(spark, settings.sources, params, str(out), settings.domains())
    return out


def files(landing: Path, domain: str, entity: str) -> list[Path]:
    return sorted(p for p in (landing / domain / entity).rglob("*") if p.is_file() and not p.name.startswith("."))


def json_records(landing: Path, domain: str, entity: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """((file date, record) for parseable lines, unparseable lines)."""
    good, bad = [], []
    for path in files(landing, domain, entity):
        day = path.parent.name.removeprefix("date=")
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                bad.append(line)
                continue
            (good.append((day, record)) if isinstance(record, dict) else bad.append(line))
    return good, bad


def test_files_are_laid_out_by_entity_and_date(landing: Path, settings: Settings) -> None:
    for domain, entities in settings.sources.items():
        for entity, spec in entities.items():
            found = files(landing, domain, entity)
            assert found, f"{domain}.{entity} has no files"
            ext = ".jsonl" if spec.format == "jsonl" else ".csv"
            assert all(p.name.startswith(f"{entity}-") and p.suffix == ext for p in found)


def test_every_kind_of_dirt_is_present(landing: Path) -> None:
    trades, bad = json_records(landing, "exchange", "trades")
    assert bad, "malformed lines"
    assert any(r.get("price") == "N/A" or r.get("quantity") == "N/A" or r.get("fee") == "N/A" for _, r in trades)
    assert any("executed_at" not in r or "trade_id" not in r or "price" not in r for _, r in trades)
    assert any(
        str(r.get("user_id", "")).startswith("UNKNOWN-") or str(r.get("order_id", "")).startswith("UNKNOWN-")
        for _, r in trades
    )
    assert any(float(r["quantity"]) <= 0 for _, r in trades if r.get("quantity") not in (None, "N/A"))
    late = [r for day, r in trades if "executed_at" in r and r["executed_at"][:10] < day]
    assert late, "late events"
    lines = Counter(line for p in files(landing, "exchange", "trades") for line in p.read_text().splitlines())
    assert any(n > 1 for n in lines.values()), "exact duplicates"


def test_orders_are_replayed_with_updated_status(landing: Path) -> None:
    orders, _ = json_records(landing, "exchange", "orders")
    statuses: dict[str, list[tuple[str, str]]] = {}
    for _, r in orders:
        if "order_id" in r and "updated_at" in r:
            statuses.setdefault(r["order_id"], []).append((r["updated_at"], r["status"]))
    replayed = [sorted(v) for v in statuses.values() if len({s for _, s in v}) > 1]
    assert replayed and all(v[0][1] == "pending" for v in replayed)
    shopify, _ = json_records(landing, "commerce", "orders_shopify")
    by_id = Counter(r["id"] for _, r in shopify if "id" in r)
    assert max(by_id.values()) >= 3  # created, fulfilled, delivered


def test_a_column_is_added_mid_stream(landing: Path) -> None:
    trades, _ = json_records(landing, "exchange", "trades")
    drift_day = "2026-05-06"  # start + days * drift_at
    assert not any("liquidity" in r for day, r in trades if day < drift_day)
    assert any("liquidity" in r for day, r in trades if day >= drift_day)
    headers = {p.parent.name: p.read_text().splitlines()[0] for p in files(landing, "commerce", "web_sessions")}
    assert headers["date=2026-05-01"].endswith(",started_at")
    assert headers["date=2026-05-10"].endswith(",started_at,utm_campaign")


def test_csv_files_have_headers_and_some_broken_rows(landing: Path) -> None:
    broken = 0
    for path in files(landing, "commerce", "web_sessions"):
        rows = list(csv.reader(path.read_text().splitlines()))
        width = len(rows[0])
        assert rows[0][0] == "session_id"
        broken += sum(1 for r in rows[1:] if len(r) != width)
    assert broken > 0


def test_two_platform_payloads_carry_the_same_order_facts(landing: Path) -> None:
    shopify, _ = json_records(landing, "commerce", "orders_shopify")
    amazon, _ = json_records(landing, "commerce", "orders_amazon")
    s = next(r for _, r in shopify if {"line_items", "total_price", "customer"} <= r.keys())
    a = next(r for _, r in amazon if {"items", "OrderTotal", "BuyerEmail"} <= r.keys())
    assert float(s["total_price"]) > 0 and s["line_items"][0]["sku"].startswith("SKU-")
    assert float(a["OrderTotal"]["Amount"]) > 0 and a["items"][0]["SellerSKU"].startswith("SKU-")
    assert a["OrderStatus"] in {"Pending", "Shipped", "Delivered"}


def test_wallet_balances_chain_per_user(landing: Path) -> None:
    """Each transaction starts from the balance the user's previous one ended with."""
    txs, _ = json_records(landing, "exchange", "wallet_transactions")
    fields = ("tx_id", "user_id", "created_at", "balance_before", "balance_after")
    clean = [r for _, r in txs if all(k in r and r[k] != "N/A" for k in fields)]
    by_user: dict[str, dict[str, dict]] = {}
    for r in clean:
        by_user.setdefault(r["user_id"], {})[r["tx_id"]] = r  # duplicates collapse
    pairs = chained = 0
    for records in by_user.values():
        ordered = sorted(records.values(), key=lambda r: (r["created_at"], r["tx_id"]))
        for prev, nxt in pairwise(ordered):
            pairs += 1
            chained += prev["balance_after"] == nxt["balance_before"]
    assert pairs > 100
    assert chained / pairs > 0.9  # the rest are next to a record the dirt removed or a same-second tie
