"""RFM and churn risk against a plain-pandas computation of the same definitions (conf/gold.yaml, DOMAIN.md) on a
few thousand generated rows, two as-of dates each."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from marketlake.config import CONF_DIR, load_settings
from marketlake.gold.customers import churn_risk, exchange_rfm
from marketlake.gold.spec import load_gold
from tests.frames import to_spark

PARAMS = load_gold(CONF_DIR).params
AS_OF = (date(2026, 4, 20), date(2026, 5, 1))
FIRST_DAY = date(2026, 1, 1)
TRADES = (
    "trade_id string, user_id string, pair string, quantity decimal(28,8), price decimal(28,8), fee decimal(28,8), "
    "fee_asset string, executed_at timestamp, event_date date"
)
USERS = "user_id string, registered_at timestamp, tier string, kyc_status string, status string"
LOGINS = "user_id string, success boolean, login_at timestamp, event_date date"
WALLET = (
    "tx_id string, user_id string, asset string, tx_type string, amount decimal(28,8), created_at timestamp, "
    "event_date date"
)


def _times(rng: np.random.Generator, n: int, days: int = 130) -> list[datetime]:
    start = datetime(2026, 1, 1)
    return [start + timedelta(seconds=int(s)) for s in rng.integers(0, days * 86400, n)]


@pytest.fixture(scope="module")
def activity() -> dict[str, pd.DataFrame]:
    return make_activity()


def make_activity() -> dict[str, pd.DataFrame]:
    """400 users (a third of them quiet for long stretches), ~3k trades with small integer quantities and
    two-decimal prices (notional exact in both engines, with frequent ties), logins and wallet transactions."""
    rng = np.random.default_rng(11)
    users = pd.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(400)],
            "registered_at": _times(rng, 400, 125),
            "tier": rng.choice(["basic", "pro", "vip"], 400),
            "kyc_status": rng.choice(["verified", "pending"], 400),
            "status": "active",
        }
    )
    weights = rng.pareto(1.5, 400) + 0.05
    weights /= weights.sum()

    def events(n: int, seed: int) -> tuple[np.ndarray, list[datetime]]:
        r = np.random.default_rng(seed)
        return r.choice(users["user_id"], n, p=weights), _times(r, n)

    who, at = events(3000, 1)
    trades = pd.DataFrame(
        {
            "trade_id": [f"t{i}" for i in range(3000)],
            "user_id": who,
            "pair": "BTC/USDT",
            "quantity": [Decimal(int(q)) for q in rng.integers(1, 6, 3000)],
            "price": [Decimal(int(p)) / 100 for p in rng.integers(100, 20000, 3000)],
            "fee": Decimal("0.1"),
            "fee_asset": "USDT",
            "executed_at": at,
        }
    )
    who, at = events(2500, 2)
    logins = pd.DataFrame({"user_id": who, "success": rng.random(2500) > 0.1, "login_at": at})
    who, at = events(1500, 3)
    wallet = pd.DataFrame(
        {
            "tx_id": [f"w{i}" for i in range(1500)],
            "user_id": who,
            "asset": "USDT",
            "tx_type": rng.choice(["deposit", "withdrawal"], 1500),
            "amount": Decimal("10"),
            "created_at": at,
        }
    )
    for frame, col in ((trades, "executed_at"), (logins, "login_at"), (wallet, "created_at")):
        frame["event_date"] = pd.to_datetime(frame[col]).dt.date
    return {"users": users, "trades": trades, "logins": logins, "wallet": wallet}


def ntile(order: pd.DataFrame, n: int = 5) -> pd.Series:
    """SQL NTILE(n) over rows already in order: the first len % n tiles get one extra row."""
    size, extra = divmod(len(order), n)
    tiles = [t + 1 for t in range(n) for _ in range(size + (1 if t < extra else 0))]
    return pd.Series(tiles, index=order.index)


def rfm_oracle(trades: pd.DataFrame, as_of: date) -> pd.DataFrame:
    window = trades[(trades["event_date"] < as_of) & (trades["event_date"] >= as_of - timedelta(days=90))].copy()
    window["notional"] = window["quantity"] * window["price"]
    g = window.groupby("user_id").agg(
        last=("event_date", "max"), frequency=("trade_id", "count"), monetary=("notional", "sum")
    )
    g = g.reset_index()
    g["recency_days"] = [(as_of - d).days for d in g["last"]]
    g["monetary_usd"] = [m.quantize(Decimal("0.01")) for m in g["monetary"]]
    g["r_score"] = ntile(g.sort_values(["recency_days", "user_id"], ascending=[False, True]))
    g["f_score"] = ntile(g.sort_values(["frequency", "user_id"]))
    g["m_score"] = ntile(g.sort_values(["monetary_usd", "user_id"]))
    r, f, m = g["r_score"], g["f_score"], g["m_score"]
    g["segment"] = np.select(
        [(r >= 4) & (f >= 4) & (m >= 4), (r >= 3) & (f >= 3) & (m >= 3), (r <= 2) & (f <= 2)],
        ["Champions", "Loyal", "At Risk"],
        "Developing",
    )
    g["rfm_code"] = r.astype(str) + f.astype(str) + m.astype(str)
    g["as_of_date"] = as_of
    return g


def churn_oracle(data: dict[str, pd.DataFrame], as_of: date) -> pd.DataFrame:
    events = pd.concat(
        [
            data["trades"][["user_id", "event_date", "executed_at"]].rename(columns={"executed_at": "at"}),
            data["logins"][data["logins"]["success"]][["user_id", "event_date", "login_at"]].rename(
                columns={"login_at": "at"}
            ),
            data["wallet"][["user_id", "event_date", "created_at"]].rename(columns={"created_at": "at"}),
        ]
    )
    start = as_of - timedelta(days=90)
    recent = events[(events["event_date"] < as_of) & (events["event_date"] >= start)]
    last = recent.groupby("user_id")["at"].max()
    users = data["users"][pd.to_datetime(data["users"]["registered_at"]).dt.date < as_of]
    rows = []
    for user_id, registered_at in zip(users["user_id"], users["registered_at"], strict=True):
        last_at = last.get(user_id)
        if last_at is not None:
            days = (as_of - pd.Timestamp(last_at).date()).days
        elif registered_at.date() >= start:
            days = (as_of - registered_at.date()).days
        else:
            days = None
        level = (
            "Churned"
            if days is None or days > 60
            else "High Risk"
            if days > 30
            else "Medium Risk"
            if days > 14
            else "Active"
        )
        rows.append((as_of, user_id, None if last_at is None else pd.Timestamp(last_at).to_pydatetime(), days, level))
    out = pd.DataFrame(rows, columns=["as_of_date", "user_id", "last_activity_at", "days_inactive", "risk_level"])
    return out.astype({"days_inactive": "Int64"})


def test_rfm_equals_pandas(spark: SparkSession, activity: dict[str, pd.DataFrame]) -> None:
    trades = to_spark(spark, activity["trades"], TRADES)
    result = exchange_rfm({"exchange_trades": trades}, AS_OF[0], AS_OF[1], PARAMS)
    expected = pd.concat(
        [rfm_oracle(activity["trades"], d) for d in pd.date_range(AS_OF[0], AS_OF[1]).date], ignore_index=True
    )
    columns = ["as_of_date", "user_id", "recency_days", "frequency", "monetary_usd", "r_score", "f_score", "m_score"]
    schema = (
        "as_of_date date, user_id string, recency_days int, frequency long, monetary_usd decimal(20,2), "
        "r_score int, f_score int, m_score int, rfm_code string, segment string"
    )
    assertDataFrameEqual(
        result.select(*columns, "rfm_code", "segment"),
        to_spark(spark, expected[[*columns, "rfm_code", "segment"]], schema),
        checkRowOrder=False,
    )
    segments = {r["segment"] for r in result.select("segment").distinct().collect()}
    assert segments == {"Champions", "Loyal", "At Risk", "Developing"}


def test_churn_risk_equals_pandas(spark: SparkSession, activity: dict[str, pd.DataFrame]) -> None:
    inputs = {
        "exchange_users": to_spark(spark, activity["users"], USERS),
        "exchange_trades": to_spark(spark, activity["trades"], TRADES),
        "exchange_logins": to_spark(spark, activity["logins"], LOGINS),
        "exchange_wallet_transactions": to_spark(spark, activity["wallet"], WALLET),
    }
    result = churn_risk(inputs, AS_OF[0], AS_OF[1], PARAMS)
    expected = pd.concat([churn_oracle(activity, d) for d in AS_OF], ignore_index=True)
    schema = "as_of_date date, user_id string, last_activity_at timestamp, days_inactive int, risk_level string"
    assertDataFrameEqual(
        result.where(result.as_of_date.isin(*AS_OF)), to_spark(spark, expected, schema), checkRowOrder=False
    )
    levels = {r["risk_level"] for r in result.select("risk_level").distinct().collect()}
    assert levels == {"Active", "Medium Risk", "High Risk", "Churned"}


def test_the_rfm_window_is_said_once_in_conf(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An environment's overlay of gold.yaml (read from MARKETLAKE_CONF_DIR) narrows the RFM window: both what RFM
    counts and what the build reads follow it."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "narrow.yaml").write_text("overlays:\n  gold:\n    rfm:\n      window_days: 10\n")
    monkeypatch.setenv("MARKETLAKE_CONF_DIR", str(conf))
    settings = load_settings("narrow")
    narrow = load_gold(settings.conf_dir, settings.overlay("gold"))
    assert (narrow.tables["exchange_rfm"].lookback, narrow.tables["commerce_rfm"].lookback) == (11, 10)
    assert (PARAMS["rfm"]["window_days"], load_gold(CONF_DIR).tables["commerce_rfm"].lookback) == (90, 90)
    as_of = date(2026, 5, 1)
    trades = pd.DataFrame(
        {
            "trade_id": ["t1", "t2"],
            "user_id": "u1",
            "pair": "BTC/USDT",
            "quantity": Decimal(1),
            "price": [Decimal(100), Decimal(50)],
            "fee": Decimal(0),
            "fee_asset": "USDT",
            "executed_at": [datetime(2026, 4, 26, 12, tzinfo=UTC), datetime(2026, 4, 11, 12, tzinfo=UTC)],
        }
    )
    inputs = {"exchange_trades": to_spark(spark, trades.assign(event_date=trades["executed_at"].dt.date), TRADES)}
    wide = exchange_rfm(inputs, as_of, as_of, PARAMS).first()
    small = exchange_rfm(inputs, as_of, as_of, narrow.params).first()
    assert (wide["frequency"], wide["monetary_usd"]) == (2, Decimal("150.00"))
    assert (small["frequency"], small["monetary_usd"]) == (1, Decimal("100.00"))
