"""Fraud scoring against independent computations: the withdrawal features and rule flags against pandas on a
hand-shaped wallet log, the order-line labels against pandas, the anomaly score against scikit-learn's Isolation
Forest refitted by hand, risk, decisions and top factors recomputed in numpy, the test metrics against
scikit-learn, and on the generator's exchange the model against the compliance rule it must beat."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

from marketlake.config import CONF_DIR, Settings
from marketlake.errors import InputError
from marketlake.fraud import features
from marketlake.fraud.model import average_precision, evaluate, fit, roc_auc, score
from marketlake.fraud.run import Windows, run_case
from marketlake.fraud.spec import FraudCase, load_fraud
from marketlake.generator import exchange as exchange_gen
from marketlake.generator.params import GeneratorParams
from marketlake.gold.spec import load_gold
from marketlake.models import registry
from marketlake.models.spec import load_models
from tests.frames import to_spark

GOLD = load_gold(CONF_DIR)
CONF = load_fraud(CONF_DIR)
D0 = date(2026, 3, 1)
D1, D2, D3 = (D0 + timedelta(days=i) for i in (1, 2, 3))
WALLET = (
    "tx_id string, user_id string, asset string, tx_type string, amount decimal(28,8), balance_before decimal(28,8), "
    "created_at timestamp, event_date date"
)
TRADES = (
    "trade_id string, order_id string, user_id string, pair string, side string, quantity decimal(28,8), "
    "price decimal(28,8), fee decimal(28,8), fee_asset string, executed_at timestamp, event_date date"
)
USERS = "user_id string, registered_at timestamp, kyc_completed_at timestamp, tier string, status string"
LOGINS = "user_id string, country string, success boolean, login_at timestamp, event_date date"


def at(day: date, hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)


def _wallet_log() -> dict[str, pd.DataFrame]:
    wallet = pd.DataFrame(
        [
            ("d1", "a", "deposit", "20000", "100", at(D1, "10:00")),
            ("w1", "a", "withdrawal", "-19000", "20100", at(D1, "20:00")),  # large, and 95 % of d1 within 10 h
            ("d2", "a", "deposit", "500", "1100", at(D1, "21:00")),  # after w1: not known to it
            ("w2", "a", "withdrawal", "-100", "1600", at(D3, "09:00")),  # no deposit in its 24 h; d2 36 h before
            ("d3", "b", "deposit", "1000", "0", at(D0, "12:00")),
            ("w0", "b", "withdrawal", "-50", "1000", at(D0, "13:00")),  # before the range: counted, not scored
            ("w3", "b", "withdrawal", "-900", "950", at(D1, "12:00")),  # exactly 24 h after d3: inside the window
            ("d0", "c", "deposit", "5000", "0", at(D2 - timedelta(days=30), "07:59")),  # 30 days and a minute before w4
            ("w4", "c", "withdrawal", "-10", "0", at(D2, "08:00")),  # empty wallet, no deposit in 30 days
        ],
        columns=["tx_id", "user_id", "tx_type", "amount", "balance_before", "created_at"],
    )
    for c in ("amount", "balance_before"):
        wallet[c] = wallet[c].map(Decimal)
    wallet = wallet.assign(asset="USDT", event_date=wallet["created_at"].map(lambda t: t.date()))
    trades = pd.DataFrame(
        [("t1", "a", at(D1, "15:00")), ("t2", "a", at(D3, "09:00")), ("t3", "b", at(D0, "10:00"))],
        columns=["trade_id", "user_id", "executed_at"],
    ).assign(pair="BTC/USDT", side="buy", quantity=Decimal("0.1"), price=Decimal("60000"), fee=Decimal("6"))
    trades = trades.assign(
        order_id=trades["trade_id"], fee_asset="USDT", event_date=trades["executed_at"].map(lambda t: t.date())
    )
    users = pd.DataFrame(
        [
            ("a", at(D0 - timedelta(days=10), "00:00"), at(D0 - timedelta(days=9), "00:00"), "basic", "active"),
            ("b", at(D0 - timedelta(days=100), "00:00"), None, "vip", "active"),
            ("c", at(D2 - timedelta(days=40), "06:00"), at(D2, "09:00"), None, "frozen"),
        ],
        columns=["user_id", "registered_at", "kyc_completed_at", "tier", "status"],
    )
    logins = pd.DataFrame(
        [
            ("a", "DE", False, at(D1, "08:00")),
            ("a", "SG", True, at(D1, "19:00")),
            ("a", "FR", False, at(D1, "20:00")),  # at w1's very second: known to it
            ("b", "DE", True, at(D1, "11:00")),
        ],
        columns=["user_id", "country", "success", "login_at"],
    )
    logins = logins.assign(event_date=logins["login_at"].map(lambda t: t.date()))
    return {"wallet": wallet, "trades": trades, "users": users, "logins": logins}


def _expected_withdrawals(log: dict[str, pd.DataFrame], first: date, last: date) -> pd.DataFrame:
    w, t, u, lg = log["wallet"], log["trades"], log["users"].set_index("user_id"), log["logins"]
    rows = []
    for r in w[(w["tx_type"] == "withdrawal")].itertuples():
        if not first <= r.event_date <= last:
            continue
        mine = w[(w["user_id"] == r.user_id) & (w["created_at"] <= r.created_at)]
        deposits = mine[mine["tx_type"] == "deposit"]
        day = deposits[deposits["created_at"] >= r.created_at - timedelta(hours=24)]
        month = deposits[deposits["created_at"] >= r.created_at - timedelta(days=30)]
        amount = float(abs(r.amount))
        dep_24h = float(day["amount"].sum()) if len(day) else 0.0
        week = r.created_at - timedelta(days=7)
        logins = lg[(lg["user_id"] == r.user_id) & (lg["login_at"] <= r.created_at) & (lg["login_at"] >= week)]
        rapid = any(
            r.created_at - d.created_at <= timedelta(hours=24) and abs(r.amount) >= d.amount * Decimal("0.8")
            for d in deposits.itertuples()
        )
        user = u.loc[r.user_id]
        rows.append(
            {
                "entity_id": r.tx_id,
                "date": r.event_date,
                "user_id": r.user_id,
                "label": float(user["status"] == "frozen"),
                "rule_flag": amount > 10000 or rapid,
                "amount_usd": amount,
                "balance_share": amount / float(r.balance_before) if r.balance_before > 0 else None,
                "deposits_24h_usd": dep_24h,
                "max_deposit_24h_usd": float(day["amount"].max()) if len(day) else 0.0,
                "withdrawn_share_of_deposits_24h": amount / dep_24h if dep_24h else None,
                "hours_since_deposit": (r.created_at - month["created_at"].max()).total_seconds() / 3600
                if len(month)
                else None,
                "withdrawals_30d": int(
                    (
                        (mine["tx_type"] == "withdrawal") & (mine["created_at"] >= r.created_at - timedelta(days=30))
                    ).sum()
                )
                - 1,
                "trades_7d": int(
                    (
                        (t["user_id"] == r.user_id) & (t["executed_at"] <= r.created_at) & (t["executed_at"] >= week)
                    ).sum()
                ),
                "account_age_days": (r.created_at - user["registered_at"]).total_seconds() / 86400,
                "kyc_verified": int(user["kyc_completed_at"] is not None and user["kyc_completed_at"] <= r.created_at),
                "failed_logins_7d": int((~logins["success"]).sum()),
                "login_countries_7d": logins["country"].nunique(),
                "tier": user["tier"],
            }
        )
    return pd.DataFrame(rows).sort_values("entity_id").reset_index(drop=True)


def test_withdrawal_features_and_rule_flags_match_pandas(spark: SparkSession) -> None:
    log = _wallet_log()
    inputs = {
        "exchange_wallet_transactions": to_spark(spark, log["wallet"], WALLET),
        "exchange_trades": to_spark(spark, log["trades"], TRADES),
        "exchange_users": to_spark(spark, log["users"], USERS),
        "exchange_logins": to_spark(spark, log["logins"], LOGINS),
    }
    got = features.exchange_withdrawals(inputs, GOLD.params, D1, D3).toPandas()
    want = _expected_withdrawals(log, D1, D3)
    assert list(want["entity_id"]) == ["w1", "w2", "w3", "w4"]
    got = got[list(want.columns)].sort_values("entity_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want.astype(got.dtypes.to_dict()), check_dtype=False)
    assert list(got["rule_flag"]) == [True, False, True, False]
    assert got.loc[0, "failed_logins_7d"] == 2 and got.loc[0, "login_countries_7d"] == 3


def test_order_line_labels_are_fraud_claims_within_the_label_days_and_the_rule_is_the_conf_rule(
    spark: SparkSession,
) -> None:
    case = CONF.cases["commerce_order_line"]
    bought = at(D1, "10:00")
    facts = pd.DataFrame(
        [
            ("o1", 1, "p1", "k1", D1, bought, 350.0, 0),  # fraud claim 13 days later: 1; rule: over 300
            ("o2", 1, "p2", "k2", D1, bought, 200.0, None),  # fraud claim exactly 14 days later: 1; new customer
            ("o3", 1, "p3", "k3", D1, bought, 200.0, 3),  # fraud claim 14 days and a minute later: 0
            ("o4", 1, "p4", "k4", D1, bought, 20.0, 1),  # regret return first, fraud claim after: 0
            ("o5", 1, "p5", "k5", D1, bought, 20.0, 1),  # never returned
            ("o6", 1, "p6", "k6", D0, at(D0, "10:00"), 20.0, 1),  # before the range
        ],
        columns=[
            "order_id", "line_no", "product_id", "customer_id", "purchase_date", "purchased_at", "line_total_usd",
            "customer_prior_orders_90d",
        ],
    ).assign(
        quantity=1, discount_pct=0.0, hour_of_day=10, customer_prior_return_rate_90d=0.0,
        customer_days_since_prior_order=None, customer_prior_aov_usd=None, device="ios", channel="web",
    )  # fmt: skip
    fact_schema = (
        "order_id string, line_no int, product_id string, customer_id string, purchase_date date, "
        "purchased_at timestamp, line_total_usd decimal(12,2), customer_prior_orders_90d long, quantity int, "
        "discount_pct double, hour_of_day int, customer_prior_return_rate_90d double, "
        "customer_days_since_prior_order double, customer_prior_aov_usd double, device string, channel string"
    )
    facts["line_total_usd"] = facts["line_total_usd"].map(lambda v: Decimal(str(v)))
    facts["customer_prior_orders_90d"] = pd.Series([0, None, 3, 1, 1, 1], dtype=object)
    returns = pd.DataFrame(
        [
            ("r1", "o1", "p1", bought + timedelta(days=13), "FRAUD_SUSPECTED"),
            ("r2", "o2", "p2", bought + timedelta(days=14), "FRAUD_SUSPECTED"),
            ("r3", "o3", "p3", bought + timedelta(days=14, minutes=1), "FRAUD_SUSPECTED"),
            ("r4", "o4", "p4", bought + timedelta(days=2), "CHANGED_MIND"),
            ("r5", "o4", "p4", bought + timedelta(days=3), "FRAUD_SUSPECTED"),
        ],
        columns=["return_id", "order_id", "product_id", "requested_at", "reason_code"],
    )
    got = features.commerce_lines(
        to_spark(spark, facts, fact_schema),
        to_spark(spark, returns, "return_id string, order_id string, product_id string, requested_at timestamp, "
                 "reason_code string"),
        GOLD.params, D1, D3, case.label_days, case.rule,
    ).orderBy("entity_id").toPandas()  # fmt: skip
    assert list(got["entity_id"]) == ["o1#1", "o2#1", "o3#1", "o4#1", "o5#1"]
    assert list(got["label"]) == [1.0, 1.0, 0.0, 0.0, 0.0]
    claimed = facts.merge(returns.sort_values("requested_at").drop_duplicates("order_id"), how="left")
    within = (claimed["reason_code"] == "FRAUD_SUSPECTED") & (
        claimed["requested_at"] <= claimed["purchased_at"] + timedelta(days=case.label_days)
    )
    assert list(got["label"]) == list(within[claimed["purchase_date"] >= D1].astype(float))
    new = pd.to_numeric(facts["customer_prior_orders_90d"]).fillna(0) == 0
    rule = (facts["line_total_usd"].astype(float) >= 300) | (new & (facts["line_total_usd"].astype(float) >= 150))
    assert list(got["rule_flag"]) == list(rule[facts["purchase_date"] >= D1])


CASE = FraudCase(
    name="synthetic",
    about="",
    label_days=0,
    test_days=5,
    rule="x2 > 1",
    numeric=("x1", "x2", "x3"),
    categorical=("kind",),
    reasons={"x1": "one", "x2": "two", "x3": "three", "kind": "kind"},
)


def _synthetic(n: int = 3000, seed: int = 3) -> pd.DataFrame:
    """Rows over 20 days: fraud follows x1 (and the rare kind 'z'), x2 is noise, x3 is often missing."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    x3 = np.where(rng.random(n) < 0.3, np.nan, rng.exponential(size=n))
    kind = rng.choice(["a", "b", "z"], p=[0.6, 0.35, 0.05], size=n)
    p = 1 / (1 + np.exp(-(3 * x1 - 6 + 2.5 * (kind == "z"))))
    return pd.DataFrame(
        {
            "entity_id": [f"e{i:05d}" for i in range(n)],
            "date": [D0 + timedelta(days=int(d)) for d in rng.integers(0, 20, n)],
            "label": (rng.random(n) < p).astype(float),
            "x1": x1,
            "x2": x2,
            "x3": x3,
            "kind": kind,
        }
    )


def test_anomaly_risk_decisions_and_factors_match_a_refit_by_hand(spark: SparkSession) -> None:
    frame = _synthetic()
    df = to_spark(
        spark, frame, "entity_id string, date date, label double, x1 double, x2 double, x3 double, kind string"
    )
    df = df.withColumn("rule_flag", F.col("x2") > 1)
    train_until = D0 + timedelta(days=14)
    train = df.where(F.col("date") <= F.lit(train_until))
    model = fit(train, CASE, CONF)
    got = score(
        df.where(F.col("date") > F.lit(train_until)), model, ["entity_id", "label", "x1", "x2", "x3", "kind"], CONF
    )
    got = got.orderBy("entity_id").toPandas()

    tr = frame[frame["date"] <= train_until].sort_values("entity_id")
    te = frame[frame["date"] > train_until].sort_values("entity_id").reset_index(drop=True)
    levels = tr["kind"].value_counts().sort_index().sort_values(ascending=False, kind="stable").index.tolist()

    def matrix(rows: pd.DataFrame) -> np.ndarray:
        numeric = [rows[c].fillna(tr[c].median()).to_numpy() for c in CASE.numeric]
        return np.column_stack([*numeric, rows["kind"].map({v: i for i, v in enumerate(levels)}).fillna(-1)])

    x_train, x_test = matrix(tr), matrix(te)
    forest = IsolationForest(n_estimators=int(CONF.isolation_forest["trees"]), random_state=7).fit(x_train)
    reference = -forest.score_samples(x_train)
    anomaly = np.array([(reference <= s).mean() for s in -forest.score_samples(x_test)])
    np.testing.assert_allclose(got["anomaly_score"], anomaly, rtol=1e-12)
    np.testing.assert_allclose(got["risk_score"], (got["rf_probability"] + anomaly) / 2, rtol=1e-12)
    want = np.select([got["risk_score"] >= 0.8, got["risk_score"] >= 0.6], ["block", "review"], "approve")
    assert (got["decision"] == want).all() and set(want) == {"approve", "review", "block"}

    importance = np.array([model.importance[f] for f in CASE.features])
    assert importance.argmax() == 0  # the forest found the signal in x1
    for i in range(len(te)):
        unusual = [
            abs(2 * ((x_train[:, j] < x_test[i, j]).sum() + (x_train[:, j] <= x_test[i, j]).sum()) / (2 * len(tr)) - 1)
            for j in range(3)
        ]
        unusual.append(1 - (tr["kind"] == te.loc[i, "kind"]).mean())
        weights = importance * np.array(unusual)
        top = [CASE.features[j] for j in np.argsort(-weights, kind="stable")[:3] if weights[j] > 0]
        assert [f["feature"] for f in got.loc[i, "top_factors"]] == top
        assert [f["weight"] for f in got.loc[i, "top_factors"]] == pytest.approx(
            sorted(weights, reverse=True)[: len(top)]
        )


def test_test_metrics_match_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(5)
    label = (rng.random(400) < 0.1).astype(float)
    score_ = np.round(rng.random(400) * 0.6 + 0.4 * label, 1)  # coarse: many ties
    assert average_precision(label, score_) == pytest.approx(average_precision_score(label, score_))
    assert roc_auc(label, score_) == pytest.approx(roc_auc_score(label, score_))
    flagged = score_ >= 0.7
    m = evaluate(label, score_, flagged)
    assert m["precision"] == pytest.approx(label[flagged].mean())
    assert m["recall"] == pytest.approx(label[flagged].sum() / label.sum())
    assert (m["rows"], m["positives"], m["flagged"]) == (400, label.sum(), flagged.sum())


def _generated_silver(
    spark: SparkSession, settings: Settings, root: Path, start: date, days: int
) -> dict[str, pd.DataFrame]:
    """The generator's exchange, typed as silver holds it, under root/silver; returns the users and withdrawals."""
    p = GeneratorParams.from_config(settings.generator, scale=0.5, days=days, seed=11, start=start)
    made = exchange_gen.generate(spark, p)
    dec = "decimal(28,8)"
    typed: dict[str, DataFrame] = {
        "exchange_users": made["users"].select("user_id", "registered_at", "kyc_completed_at", "tier", "status"),
        "exchange_wallet_transactions": made["wallet_transactions"].select(
            "tx_id", "user_id", "asset", "tx_type", F.col("amount").cast(dec).alias("amount"),
            F.col("balance_before").cast(dec).alias("balance_before"), "created_at",
            F.to_date("created_at").alias("event_date"),
        ),
        "exchange_trades": made["trades"].select(
            "trade_id", "order_id", "user_id", "pair", "side", F.col("quantity").cast(dec).alias("quantity"),
            F.col("price").cast(dec).alias("price"), F.col("fee").cast(dec).alias("fee"), "fee_asset", "executed_at",
            F.to_date("executed_at").alias("event_date"),
        ),
        "exchange_logins": made["logins"].select(
            "user_id", "country", "success", "login_at", F.to_date("login_at").alias("event_date")
        ),
    }  # fmt: skip
    for name, df in typed.items():
        df.write.format("delta").save(str(root / "silver" / name))
    users = typed["exchange_users"].select("user_id", "status").toPandas()
    withdrawals = (
        typed["exchange_wallet_transactions"].where("tx_type = 'withdrawal'").select("tx_id", "user_id", "event_date")
    ).toPandas()
    return {"users": users, "withdrawals": withdrawals}


def test_on_the_generators_exchange_the_model_beats_the_compliance_rule_and_a_rerun_changes_nothing(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    first, days = date(2026, 3, 1), 42
    start, end = first + timedelta(days=35), first + timedelta(days=days - 1)
    truth = _generated_silver(spark, settings, tmp_path, first, days)
    db = f"f_{tmp_path.name[-12:].replace('-', '_')}"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {db} LOCATION '{tmp_path / db}'")
    local = dataclasses.replace(settings, lakehouse_root=tmp_path)
    registry.configure(local, load_models(CONF_DIR))
    case = CONF.cases["exchange_withdrawal"]
    conf = dataclasses.replace(  # smaller forests: the same code, a shorter test
        CONF, forest={**CONF.forest, "trees": 30}, isolation_forest={**CONF.isolation_forest, "trees": 50}
    )
    result = run_case(spark, local, GOLD, conf, case, start, end, db)

    # Labels take 7 days: trained on rows dated up to start - 8 days, the last 7 of them the test window.
    w = Windows(start - timedelta(days=120), date(2026, 3, 21), date(2026, 3, 22), date(2026, 3, 28))
    assert result.windows == w and start == date(2026, 4, 5)
    frozen = set(truth["users"].loc[truth["users"]["status"] == "frozen", "user_id"])
    tx = truth["withdrawals"]
    test = tx[(tx["event_date"] >= w.test_from) & (tx["event_date"] <= w.test_until)]
    ev = {(r["method"], r["threshold"]): r for r in result.evaluation}
    rule, block, review = ev[("rule", None)], ev[("risk", CONF.block)], ev[("risk", CONF.review)]
    assert rule["rows"] == len(test) and rule["positives"] == test["user_id"].isin(frozen).sum() > 0
    assert rule["recall"] == 1.0  # every laundering withdrawal is rapid: the rule catches them, among many others
    assert block["pr_auc"] > rule["pr_auc"] and block["precision"] > rule["precision"]
    assert review["recall"] >= 0.5 and review["flagged"] < rule["flagged"]

    scores = spark.table(f"{db}.fraud_scores").toPandas()
    scored = tx[(tx["event_date"] >= start) & (tx["event_date"] <= end)]
    assert sorted(scores["entity_id"]) == sorted(scored["tx_id"]) and result.rows == len(scored)
    want = np.select([scores["risk_score"] >= 0.8, scores["risk_score"] >= 0.6], ["block", "review"], "approve")
    assert (scores["decision"] == want).all()
    np.testing.assert_allclose(scores["risk_score"], (scores["rf_probability"] + scores["anomaly_score"]) / 2)
    blocked = scores[scores["decision"] == "block"]
    assert len(blocked) and blocked["user_id"].isin(frozen).mean() >= 0.5
    assert all(1 <= len(f) <= 3 for f in scores["top_factors"])

    again = run_case(spark, local, GOLD, conf, case, start, end, db)
    assert not again.written and again.run_id == result.run_id
    with pytest.raises(InputError, match="training needs both labels"):
        run_case(spark, local, GOLD, conf, case, first + timedelta(days=9), first + timedelta(days=10), db)
