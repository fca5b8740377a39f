"""The regret-intervention experiment: arms in the decisions (hashlib for the arms), the generator's planted effect
found by the readout, and the job's assignments and daily readouts against pandas and scipy on hand-shaped
exposures. The statistics themselves and the A/A false-positive rate: test_experiment_stats.py."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from scipy.stats import chi2_contingency, ttest_ind

from marketlake.config import CONF_DIR, Settings, load_settings
from marketlake.errors import InputError
from marketlake.experiments.arms import with_arms
from marketlake.experiments.readout import readout
from marketlake.experiments.run import build
from marketlake.experiments.spec import load_experiments
from marketlake.generator import commerce
from marketlake.generator import trends as trend_gen
from marketlake.generator.params import GeneratorParams
from marketlake.generator.rand import Rng
from marketlake.models.spec import load_models
from marketlake.tables import create_table_if_missing

MODELS = load_models(CONF_DIR)
REGRET = MODELS.spec("regret")
EXPERIMENTS = load_experiments(CONF_DIR)
EXPERIMENT = EXPERIMENTS["regret_interventions"]
NAME = EXPERIMENT.name


def bucket(unit: str) -> float:
    return int(hashlib.sha256(f"{NAME}/{unit}".encode()).hexdigest()[:13], 16) / 16**13


def arm(unit: str) -> str:
    """The arm by the design's rule, computed here from hashlib: holdout below 0.1, control to 0.55, treatment."""
    b = bucket(unit)
    return "holdout" if b < 0.1 else "control" if b < 0.55 else "treatment"


def test_exposed_rows_are_the_policys_picks_and_the_days_top_consenting_scores_and_only_treatment_gets_one(
    spark: SparkSession,
) -> None:
    """One day of 40 decisions, scores falling with the row number; every fifth row picked by the policy, every
    third customer without consent. With daily_top 6 the exposed rows are the picks and the 6 highest-scored rows
    with consent; treated ones get the pick or the fallback, control and holdout none. By policy alone, only the
    picks are exposed."""
    pick = ("15% exchange credit or guided fit call", "email", "flag for manual review")
    rows = [
        (
            f"O{i:02d}",
            1,
            f"C{i:08d}",
            date(2026, 3, 1),
            1 - i / 100,
            *(pick if i % 5 == 4 else ("none",) * 3),
            i % 3 > 0,
        )
        for i in range(40)
    ]
    decided = spark.createDataFrame(
        rows,
        "order_id string, line_no int, customer_id string, purchase_date date, score double, intervention string, "
        "channel string, escalation string, marketing_opt_in boolean",
    )
    fallback = tuple(EXPERIMENT.fallback[c] for c in ("intervention", "channel", "escalation"))
    top = [r[0] for r in rows if r[8]][:6]
    schema = (
        "order_id string, line_no int, customer_id string, purchase_date date, score double, intervention string, "
        "channel string, escalation string, experiment string, variant string, policy_intervention string"
    )
    for daily_top in (6, None):
        expected = []
        for order, line, unit, day, score, intervention, channel, escalation, _ in rows:
            picked = intervention != "none"
            exposed = picked or (daily_top is not None and order in top)
            a = arm(unit) if exposed else None
            own = (intervention, channel, escalation) if picked else fallback
            given = own if a == "treatment" else ("none",) * 3 if exposed else (intervention, channel, escalation)
            expected.append((order, line, unit, day, score, *given, NAME if a else None, a, intervention))
        assert {e[-2] for e in expected} >= {"holdout", "control", "treatment", None}
        experiment = dataclasses.replace(EXPERIMENT, daily_top=daily_top)
        assert_df_equality(
            with_arms(decided, REGRET, experiment),
            spark.createDataFrame(expected, schema),
            ignore_row_order=True,
            ignore_nullable=True,
        )
    plain = with_arms(decided, REGRET, None)
    assert plain.where("experiment IS NOT NULL OR variant IS NOT NULL").isEmpty()
    assert plain.where("intervention != policy_intervention").isEmpty()


def test_the_planted_effect_cuts_only_treated_consenting_customers_returns_and_the_readout_finds_it(
    spark: SparkSession,
) -> None:
    """The same generated lines with no effect and with a 50 % cut: the only lines whose return decision changes are
    regret returns of treated customers with marketing consent, which become kept; over the lines of consenting
    customers, the readout finds the cut (its relative CI covers -50 %), and an A/A split of the control arm finds
    nothing."""
    settings = load_settings("local")
    lines = {}
    for effect in (0.0, 0.5):
        p = GeneratorParams.from_config(
            settings.generator, EXPERIMENTS, scale=0.5, days=28, seed=3, start=date(2026, 3, 1), effect=effect
        )
        trends = trend_gen.product_trends(spark, p, Rng(p.seed), p.count("commerce_products"))
        drawn = commerce.drawn(spark, p, trends)
        lines[effect] = drawn.lines.select(
            "_line_key", "customer_id", "_opt_in", "_p_regret", F.coalesce("_return_kind", F.lit("kept")).alias("kind")
        ).toPandas()
    before, after = lines[0.0], lines[0.5].set_index("_line_key").loc[lines[0.0]["_line_key"]].reset_index()
    before["arm"] = before["customer_id"].map(arm)
    treated = before["_opt_in"] & (before["arm"] == "treatment")
    changed = before["kind"].to_numpy() != after["kind"].to_numpy()
    assert changed.sum() > 50
    assert treated[changed].all()
    assert (before["kind"][changed] == "regret").all() and (after["kind"][changed] == "kept").all()
    np.testing.assert_allclose(after["_p_regret"], np.where(treated, 0.5, 1.0) * before["_p_regret"])

    eligible = after[before["_opt_in"] & (before["arm"] != "holdout")].assign(
        experiment=NAME, variant=before["arm"], regret_return=lambda d: (d["kind"] == "regret").astype(float)
    )
    plan = {"regret_return": EXPERIMENT.metrics["regret_return"]}
    found = readout(
        spark, spark.createDataFrame(eligible[["experiment", "variant", "regret_return"]]), {NAME: "control"}, plan
    )
    cut = found.where("variant = 'treatment'").first()
    assert cut["p_value"] < 0.01
    assert cut["relative_lift_low"] < -0.5 < cut["relative_lift_high"]
    control = eligible[eligible["variant"] == "control"]
    a, b = control.iloc[::2], control.iloc[1::2]
    table = [
        [a["regret_return"].sum(), len(a) - a["regret_return"].sum()],
        [b["regret_return"].sum(), len(b) - b["regret_return"].sum()],
    ]
    assert chi2_contingency(table, correction=False).pvalue > 0.05


START = date(2026, 3, 1)


def _exposures(seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hand-shaped decisions and outcomes: 150 units with 1-3 exposed lines over 10 days (treated units return
    less), plus lines the policy left alone (never exposed) with returns of their own."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(150):
        unit = f"C{u:08d}"
        for line in range(int(rng.integers(1, 4))):
            a = arm(unit)
            returned = bool(rng.random() < (0.35 if a == "treatment" else 0.55))
            day = START + timedelta(days=int(rng.integers(0, 10)))
            rows.append((f"O{u}-{line}", 1, unit, day, a, returned, round(float(rng.uniform(10, 150)), 2)))
        rows.append((f"N{u}", 1, unit, START + timedelta(days=u % 10), None, u % 3 == 0, 99.0))
    frame = pd.DataFrame(
        rows, columns=["order_id", "line_no", "customer_id", "purchase_date", "variant", "returned", "total"]
    )
    decisions = frame.assign(
        experiment=np.where(frame["variant"].notna(), NAME, None),
        intervention=np.where(frame["variant"] == "treatment", "size-fit check + 10% exchange credit", "none"),
        policy_intervention=np.where(frame["variant"].notna(), "size-fit check + 10% exchange credit", "none"),
    )
    outcomes = frame.assign(label_complete=True, excluded_reason=None)
    return decisions, outcomes


def _lake(spark: SparkSession, settings: Settings, tmp_path: Path, decisions: pd.DataFrame, outcomes: pd.DataFrame):
    db = f"x_{tmp_path.name[-12:].replace('-', '_')}"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {db} LOCATION '{tmp_path / db}'")
    frames = {
        REGRET.decisions_table: spark.createDataFrame(
            decisions[
                [
                    "order_id",
                    "line_no",
                    "customer_id",
                    "purchase_date",
                    "intervention",
                    "experiment",
                    "variant",
                    "policy_intervention",
                ]
            ]
            .astype(object)
            .where(decisions.notna(), None),
            "order_id string, line_no int, customer_id string, purchase_date date, intervention string, "
            "experiment string, variant string, policy_intervention string",
        ),
        REGRET.table: spark.createDataFrame(
            outcomes[["order_id", "line_no", "customer_id", "purchase_date", "total", "returned", "label_complete"]],
            "order_id string, line_no int, customer_id string, purchase_date date, line_total_usd double, "
            "returned_within_30d boolean, label_complete boolean",
        ),
    }
    for name, df in frames.items():
        create_table_if_missing(spark, f"{db}.{name}", df.schema, ["purchase_date"])
        df.write.format("delta").mode("append").save(str(tmp_path / db / name))
    return dataclasses.replace(settings, lakehouse_root=tmp_path), db


def _oracle(decisions: pd.DataFrame, day: date) -> dict[str, dict]:
    """Per arm on readout day `day`, from pandas and scipy: units, conversions, value means and the tests."""
    mature = decisions[
        decisions["variant"].isin(["control", "treatment"]) & (decisions["purchase_date"] <= day - timedelta(days=30))
    ]
    units = (
        mature.groupby(["customer_id", "variant"])
        .apply(
            lambda g: pd.Series(
                {"ret": float(g["returned"].any()), "kept": float((g["total"] * ~g["returned"]).sum())}
            ),
            include_groups=False,
        )
        .reset_index()
    )
    arms = {v: units[units["variant"] == v] for v in ("control", "treatment")}
    c, t = arms["control"], arms["treatment"]
    table = [[t["ret"].sum(), len(t) - t["ret"].sum()], [c["ret"].sum(), len(c) - c["ret"].sum()]]
    return {
        "units": {v: len(a) for v, a in arms.items()},
        "conversions": {v: int(a["ret"].sum()) for v, a in arms.items()},
        "rate": {v: a["ret"].mean() for v, a in arms.items()},
        "kept": {v: a["kept"].mean() for v, a in arms.items()},
        "chi2_p": chi2_contingency(table, correction=False).pvalue,
        "welch": ttest_ind(t["kept"], c["kept"], equal_var=False),
    }


def test_assignments_and_daily_readouts_match_pandas_and_scipy_and_a_rerun_changes_nothing(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    decisions, outcomes = _exposures()
    local, db = _lake(spark, settings, tmp_path, decisions, outcomes)
    first, last = START + timedelta(days=28), START + timedelta(days=42)
    (run,) = build(spark, local, MODELS, EXPERIMENTS, first, last, db)
    assert run.readout_days == [START + timedelta(days=30 + i) for i in range(13)]

    exposed = decisions[decisions["variant"].notna() & (decisions["purchase_date"] >= first)]
    want = exposed.groupby(["purchase_date", "customer_id", "variant"]).size().reset_index(name="exposed_rows")
    got = spark.table(f"{db}.experiment_assignments").toPandas()
    assert len(got) == len(want) == run.assignments
    merged = got.merge(
        want, left_on=["exposure_date", "customer_id", "variant"], right_on=["purchase_date", "customer_id", "variant"]
    )
    assert len(merged) == len(want) and (merged["exposed_rows_x"] == merged["exposed_rows_y"]).all()
    assert (merged["variant"] == merged["customer_id"].map(arm)).all()
    np.testing.assert_array_equal(merged["bucket"], merged["customer_id"].map(bucket))

    readouts = spark.table(f"{db}.experiment_readouts").toPandas()
    for day in (START + timedelta(days=30), START + timedelta(days=35), START + timedelta(days=42)):
        o = _oracle(decisions, day)
        r = readouts[readouts["readout_date"] == day].set_index(["metric", "variant"])
        assert set(r.index) == {(m, v) for m in EXPERIMENT.metrics for v in ("control", "treatment")}
        assert (r["exposed_until"] == day - timedelta(days=30)).all()
        for v in ("control", "treatment"):
            assert r.loc[("regret_return", v), "units"] == o["units"][v]
            assert r.loc[("regret_return", v), "conversions"] == o["conversions"][v]
            assert r.loc[("regret_return", v), "value"] == pytest.approx(o["rate"][v])
            assert r.loc[("kept_revenue_usd", v), "value"] == pytest.approx(o["kept"][v])
        conv, kept = r.loc[("regret_return", "treatment")], r.loc[("kept_revenue_usd", "treatment")]
        assert conv["absolute_lift"] == pytest.approx(o["rate"]["treatment"] - o["rate"]["control"])
        assert conv["p_value"] == pytest.approx(o["chi2_p"], rel=1e-9)
        assert kept["statistic"] == pytest.approx(o["welch"].statistic, rel=1e-9)
        assert kept["p_value"] == pytest.approx(o["welch"].pvalue, rel=1e-9)
        assert not conv["sample_reached"] and conv["planned_units_per_arm"] > max(o["units"].values())

    again = build(spark, local, MODELS, EXPERIMENTS, first, last, db)[0]
    assert not again.assignments_written and not again.readouts_written


def test_a_readout_whose_outcomes_are_not_final_is_refused(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    decisions, outcomes = _exposures()
    late = outcomes["purchase_date"] == START + timedelta(days=9)
    outcomes.loc[late, "label_complete"] = False
    local, db = _lake(spark, settings, tmp_path, decisions, outcomes)
    with pytest.raises(InputError, match=r"not final .* readouts of 2026-04-09, 2026-04-10 count"):
        build(spark, local, MODELS, EXPERIMENTS, START + timedelta(days=38), START + timedelta(days=40), db)
    (run,) = build(spark, local, MODELS, EXPERIMENTS, START + timedelta(days=30), START + timedelta(days=38), db)
    assert run.readout_days[-1] == START + timedelta(days=38)
