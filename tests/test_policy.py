"""The intervention policy (gold.regret_interventions, gold.churn_interventions): which scored row gets which
intervention under each rule of conf/models.yaml, on both sides of every score limit and segment condition, and
the consent rule (DOMAIN "Privacy"): no marketing intervention without marketing_opt_in = true."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from marketlake.config import CONF_DIR, Settings
from marketlake.errors import ConfigError
from marketlake.models.run import consented
from marketlake.models.scoring import decisions
from marketlake.models.spec import PolicyRule, load_models

CONF = load_models(CONF_DIR)
REGRET, CHURN = CONF.spec("regret"), CONF.spec("churn")
DAY = date(2026, 3, 10)
REGRET_SCORED = (
    "order_id string, line_no int, purchase_date date, model_name string, model_version int, score double, "
    "risk_band string, customer_id string, customer_prior_orders_90d long, customer_prior_return_rate_90d double, "
    "marketing_opt_in boolean"
)
CHURN_SCORED = (
    "user_id string, as_of_date date, model_name string, model_version int, score double, risk_band string, "
    "volume_usd_90d double"
)
OUTCOME = (
    "id string, segment string, intervention string, channel string, escalation string, suppressed_by_consent boolean"
)
NEW_BUYER, REPEAT_RETURNER = REGRET.policy
VALUABLE, AT_RISK = CHURN.policy


def chosen(row_id: str, rule: PolicyRule | None, spec: Any, suppressed: bool = False) -> tuple:
    """The expected decision of a row: a rule's (or, for None, the default's) segment, intervention, channel and
    escalation."""
    if rule is None:
        d = spec.policy_default
        return (row_id, d["segment"], d["intervention"], d["channel"], d["escalation"], suppressed)
    return (row_id, rule.segment, rule.intervention, rule.channel, rule.escalation, suppressed)


def regret_rows(spark: SparkSession, rows: list[tuple[str, float, int | None, float | None, bool | None]]) -> DataFrame:
    """(id, score, prior orders, prior return rate, marketing_opt_in) as regret scores."""
    full = [
        (row_id, 1, DAY, "regret", 3, score, "high", f"k-{row_id}", orders, rate, opt_in)
        for row_id, score, orders, rate, opt_in in rows
    ]
    return spark.createDataFrame(full, REGRET_SCORED)


def decided(scored: DataFrame, spec: Any, key: str = "order_id") -> DataFrame:
    out = decisions(scored, spec)
    return out.select(
        out[key].alias("id"), "segment", "intervention", "channel", "escalation", out.suppressed_by_consent
    )


def test_decisions_keep_the_score_columns_and_say_what_consent_suppressed(spark: SparkSession) -> None:
    out = decisions(regret_rows(spark, [("a", 0.8, 0, None, True)]), REGRET)
    assert out.columns == [
        "order_id", "line_no", "purchase_date", "model_name", "model_version", "score", "risk_band", "segment",
        "intervention", "channel", "escalation", "suppressed_by_consent",
    ]  # fmt: skip
    assert out.first().asDict() == {
        "order_id": "a", "line_no": 1, "purchase_date": DAY, "model_name": "regret", "model_version": 3,
        "score": 0.8, "risk_band": "high", "segment": "new buyer", "intervention": NEW_BUYER.intervention,
        "channel": "checkout modal", "escalation": NEW_BUYER.escalation, "suppressed_by_consent": False,
    }  # fmt: skip


def test_new_buyer_rule(spark: SparkSession) -> None:
    """New buyer: no order in the prior 90 days (none known counts as none), score 0.75..1.0."""
    assert (NEW_BUYER.min_score, NEW_BUYER.max_score) == (0.75, 1.0)
    rows = [
        ("at-min", 0.75, 0, None, True),
        ("at-max", 1.0, 0, None, True),
        ("unknown-history", 0.9, None, None, True),
        ("below-min", 0.7499, 0, None, True),
        ("one-prior-order", 0.9, 1, 0.0, True),
    ]
    expected = [
        chosen("at-min", NEW_BUYER, REGRET),
        chosen("at-max", NEW_BUYER, REGRET),
        chosen("unknown-history", NEW_BUYER, REGRET),
        chosen("below-min", None, REGRET),
        chosen("one-prior-order", None, REGRET),
    ]
    assertDataFrameEqual(decided(regret_rows(spark, rows), REGRET), spark.createDataFrame(expected, OUTCOME))


def test_repeat_returner_rule(spark: SparkSession) -> None:
    """Repeat returner: prior 90-day return rate >= 0.3, score 0.6..1.0."""
    assert (REPEAT_RETURNER.min_score, REPEAT_RETURNER.max_score) == (0.6, 1.0)
    rows = [
        ("at-both-limits", 0.6, 4, 0.3, True),
        ("high", 0.99, 2, 1.5, True),
        ("rate-below", 0.95, 4, 0.29, True),
        ("score-below", 0.5999, 4, 0.5, True),
        ("rate-unknown", 0.95, 4, None, True),
    ]
    expected = [
        chosen("at-both-limits", REPEAT_RETURNER, REGRET),
        chosen("high", REPEAT_RETURNER, REGRET),
        chosen("rate-below", None, REGRET),
        chosen("score-below", None, REGRET),
        chosen("rate-unknown", None, REGRET),
    ]
    assertDataFrameEqual(decided(regret_rows(spark, rows), REGRET), spark.createDataFrame(expected, OUTCOME))


def test_the_first_rule_that_holds_decides(spark: SparkSession) -> None:
    """No prior order known but a return rate of 0.5: at 0.8 both rules hold and the first (new buyer) wins; at
    0.7 only the repeat-returner score range holds."""
    rows = [("both", 0.8, None, 0.5, True), ("second-only", 0.7, None, 0.5, True), ("low", 0.1, 0, None, True)]
    expected = [
        chosen("both", NEW_BUYER, REGRET),
        chosen("second-only", REPEAT_RETURNER, REGRET),
        chosen("low", None, REGRET),
    ]
    assertDataFrameEqual(decided(regret_rows(spark, rows), REGRET), spark.createDataFrame(expected, OUTCOME))


def test_no_marketing_intervention_without_consent(spark: SparkSession) -> None:
    """Both regret interventions are marketing (a checkout-modal offer, an email offer). A customer who opted out
    (false) or whose consent is unknown (null: not in silver.commerce_customers) gets the default instead, marked
    suppressed_by_consent; a row no rule wanted is not marked."""
    assert NEW_BUYER.marketing and REPEAT_RETURNER.marketing
    rows = [
        ("new-opted-in", 0.9, 0, None, True),
        ("new-opted-out", 0.9, 0, None, False),
        ("new-unknown", 0.9, 0, None, None),
        ("returner-opted-out", 0.9, 3, 0.5, False),
        ("both-opted-out", 0.9, None, 0.5, False),
        ("low-opted-out", 0.2, 0, None, False),
    ]
    expected = [
        chosen("new-opted-in", NEW_BUYER, REGRET),
        chosen("new-opted-out", None, REGRET, suppressed=True),
        chosen("new-unknown", None, REGRET, suppressed=True),
        chosen("returner-opted-out", None, REGRET, suppressed=True),
        chosen("both-opted-out", None, REGRET, suppressed=True),
        chosen("low-opted-out", None, REGRET),
    ]
    assertDataFrameEqual(decided(regret_rows(spark, rows), REGRET), spark.createDataFrame(expected, OUTCOME))


def test_without_consent_a_row_falls_through_to_the_next_service_rule(spark: SparkSession) -> None:
    """A policy with a marketing rule before a service rule (an order-status message is not marketing): without
    consent the marketing rule is skipped and the service rule decides."""
    status = PolicyRule(
        "any buyer", "true", 0.5, 1.0, "order status update with fit guide", "order status email", "none", False
    )
    spec = dataclasses.replace(REGRET, policy=(NEW_BUYER, status))
    rows = [
        ("opted-in", 0.9, 0, None, True),
        ("opted-out", 0.9, 0, None, False),
        ("unknown", 0.9, 0, None, None),
        ("service-only", 0.6, 0, None, False),
        ("nothing", 0.4, 0, None, False),
    ]
    expected = [
        chosen("opted-in", NEW_BUYER, spec),
        chosen("opted-out", status, spec, suppressed=True),
        chosen("unknown", status, spec, suppressed=True),
        chosen("service-only", status, spec),
        chosen("nothing", None, spec),
    ]
    assertDataFrameEqual(decided(regret_rows(spark, rows), spec), spark.createDataFrame(expected, OUTCOME))


def test_churn_rules_need_no_consent(spark: SparkSession) -> None:
    """Valuable user at risk: 90-day volume >= $10,000, score 0.5..1.0; user at risk: any user, score 0.7..1.0.
    Exchange users carry no consent field and neither rule is marketing, so no consent column is needed."""
    assert (VALUABLE.min_score, AT_RISK.min_score) == (0.5, 0.7)
    assert not VALUABLE.marketing and not AT_RISK.marketing and CHURN.consent is None
    rows = [
        ("valuable-at-limits", 0.5, 10_000.0),
        ("valuable-high", 0.95, 50_000.0),
        ("valuable-score-below", 0.4999, 50_000.0),
        ("volume-below", 0.6999, 9_999.99),
        ("at-risk", 0.7, 9_999.99),
        ("at-risk-no-volume", 1.0, None),
        ("low", 0.2, 100.0),
    ]
    scored = spark.createDataFrame(
        [(u, DAY, "churn", 1, score, "high", volume) for u, score, volume in rows], CHURN_SCORED
    )
    expected = [
        chosen("valuable-at-limits", VALUABLE, CHURN),
        chosen("valuable-high", VALUABLE, CHURN),
        chosen("valuable-score-below", None, CHURN),
        chosen("volume-below", None, CHURN),
        chosen("at-risk", AT_RISK, CHURN),
        chosen("at-risk-no-volume", AT_RISK, CHURN),
        chosen("low", None, CHURN),
    ]
    assertDataFrameEqual(decided(scored, CHURN, "user_id"), spark.createDataFrame(expected, OUTCOME))


def test_marketing_rules_refuse_rows_without_consent(spark: SparkSession) -> None:
    scored = regret_rows(spark, [("a", 0.9, 0, None, True)]).drop("marketing_opt_in")
    with pytest.raises(ValueError, match="marketing rules but the rows carry no marketing_opt_in"):
        decisions(scored, REGRET)


def _conf_with(tmp_path: Path, change: Any) -> Path:
    raw = yaml.safe_load((CONF_DIR / "models.yaml").read_text())
    change(raw["models"]["regret"])
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


def test_every_rule_says_whether_it_is_marketing_and_marketing_needs_a_consent_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="policy rule 'new buyer' must say marketing: true or false"):
        load_models(_conf_with(tmp_path, lambda m: m["policy"][0].pop("marketing")))
    with pytest.raises(ConfigError, match="marketing policy rules need a consent source"):
        load_models(_conf_with(tmp_path, lambda m: m.pop("consent")))
    with pytest.raises(ConfigError, match="consent key user_id must be one of its keys or carry columns"):
        load_models(_conf_with(tmp_path, lambda m: m.update(consent={"table": "commerce_customers", "key": "user_id"})))


def test_consent_is_the_customers_current_opt_in_from_silver(
    spark: SparkSession, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The scoring job joins silver.commerce_customers' marketing_opt_in on customer_id; a customer missing from it
    (or a null customer) has unknown consent; without the table every row's consent is unknown, with a warning."""
    local = dataclasses.replace(settings, lakehouse_root=tmp_path)
    scored = spark.createDataFrame(
        [("o1", "k-yes"), ("o2", "k-no"), ("o3", "k-unknown"), ("o4", None)], "order_id string, customer_id string"
    )
    with caplog.at_level(logging.WARNING, logger="marketlake.models.run"):
        missing = consented(spark, local, REGRET, scored)
    assert "silver.commerce_customers does not exist" in caplog.text
    assertDataFrameEqual(
        missing.select("order_id", "marketing_opt_in"),
        spark.createDataFrame(
            [(o, None) for o in ("o1", "o2", "o3", "o4")], "order_id string, marketing_opt_in boolean"
        ),
    )
    customers = spark.createDataFrame(
        [("k-yes", "GB", True), ("k-no", "DE", False), ("k-other", "FR", True)],
        "customer_id string, country string, marketing_opt_in boolean",
    )
    customers.write.format("delta").save(str(tmp_path / "silver" / "commerce_customers"))
    assertDataFrameEqual(
        consented(spark, local, REGRET, scored).select("order_id", "marketing_opt_in"),
        spark.createDataFrame(
            [("o1", True), ("o2", False), ("o3", None), ("o4", None)], "order_id string, marketing_opt_in boolean"
        ),
    )
    assert consented(spark, local, CHURN, scored) is scored  # no consent source: rows unchanged
