"""Revenue anomalies on daily KPI series: a rolling z-score, an Isolation Forest on engineered daily features and
a seasonal forecast-residual detector (Holt-Winters, weekly season, on log values), run per series in parallel
with applyInPandas; a consensus of 2 of 3 and of all 3; and a JSON insight per confirmed day.

Every detector sees the series up to the last day of the range read: the z-score compares a day with the days
before it only, while the Isolation Forest and the Holt-Winters parameters are fitted on the whole window read,
so a backfill that reads later days may move an earlier day's flags (re-running the same range changes nothing)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

DETECTORS = ("zscore", "isolation_forest", "forecast")

SCHEMA = (
    "date date, series string, dimension string, value double, expected double, zscore double, zscore_flag boolean, "
    "iforest_score double, iforest_flag boolean, forecast double, residual_z double, forecast_flag boolean, "
    "detectors_agreeing int, consensus_2of3 boolean, consensus_all boolean, insight string"
)


def series_frame(df: DataFrame, name: str, dimension: str, value: str, components: Mapping[str, str]) -> DataFrame:
    """A gold KPI table as long series rows: date, series, dimension, value and the components as a JSON map."""
    parts = F.to_json(F.create_map(*[x for k, c in components.items() for x in (F.lit(k), F.col(c).cast("double"))]))
    return df.select(
        "date",
        F.lit(name).alias("series"),
        F.col(dimension).cast("string").alias("dimension"),
        F.col(value).cast("double").alias("value"),
        parts.alias("components"),
    )


def _zscore(values: np.ndarray, window: int, min_days: int, threshold: float) -> tuple[np.ndarray, ...]:
    """Rolling z-score of each day against the `window` calendar days before it, leaving out days already flagged
    (a flash sale inside the window would otherwise inflate the spread and hide the outage after it). Returns the
    expected value (prior mean), z and the flags; a day with fewer than min_days usable prior days is not scored."""
    n = len(values)
    expected, z, flagged = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool)
    for i in range(n):
        prior = [j for j in range(max(0, i - window), i) if not flagged[j]]
        if len(prior) < min_days:
            continue
        mean, std = values[prior].mean(), values[prior].std(ddof=1)
        expected[i] = mean
        if std > 0:
            z[i] = (values[i] - mean) / std
            flagged[i] = abs(z[i]) > threshold
    return expected, z, flagged


def _prior_means(parts: pd.DataFrame, flagged: np.ndarray, window: int) -> pd.DataFrame:
    """Each component's mean over the same prior days the z-score used (flagged days left out)."""
    usable = parts.where(~pd.Series(flagged, index=parts.index), np.nan)
    return usable.shift(1).rolling(window, min_periods=1).mean()


def _features(values: pd.Series, counts: pd.DataFrame) -> np.ndarray:
    """Engineered daily features: log level, change on the day before, ratio to the prior 7-day median and to the
    same weekday last week, and the same ratios for each component (neutral values where history is missing)."""
    columns = [np.log1p(values.clip(lower=0))]
    for s in [values, *[counts[c] for c in counts.columns]]:
        median = s.shift(1).rolling(7, min_periods=1).median()
        columns += [
            (s / s.shift(1)).replace([np.inf, -np.inf], np.nan).fillna(1.0),
            (s / median).replace([np.inf, -np.inf], np.nan).fillna(1.0),
            (s / s.shift(7)).replace([np.inf, -np.inf], np.nan).fillna(1.0),
        ]
    return np.column_stack([np.asarray(c, dtype="float64") for c in columns])


def _iforest(x: np.ndarray, conf: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.ensemble import IsolationForest

    if len(x) < 8:
        return np.full(len(x), np.nan), np.zeros(len(x), dtype=bool)
    forest = IsolationForest(
        n_estimators=int(conf["trees"]), contamination=float(conf["contamination"]), random_state=int(conf["seed"])
    ).fit(x)
    return -forest.score_samples(x), forest.predict(x) == -1


def _forecast(values: pd.Series, conf: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """One-step-ahead Holt-Winters forecast (additive weekly season on log1p values) and robust residual z-scores
    (residual / 1.4826 MAD)."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    season = int(conf["seasonal_days"])
    y = np.log1p(values.clip(lower=0).to_numpy(dtype="float64"))
    if len(y) < 2 * season + 2:
        return np.full(len(y), np.nan), np.full(len(y), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(
            y, trend=None, seasonal="add", seasonal_periods=season, initialization_method="estimated"
        ).fit()
    fitted = np.asarray(fit.fittedvalues, dtype="float64")
    residual = y - fitted
    mad = np.median(np.abs(residual - np.median(residual))) * 1.4826
    z = residual / mad if mad > 0 else np.zeros(len(y))
    return np.expm1(fitted), z


def _log_change(value: float, expected: float) -> float:
    """|log(value / expected)|: how much a component moved, comparable between factors of a product
    (revenue = orders x AOV); a drop to zero moves infinitely."""
    return abs(np.log(value / expected)) if value > 0 else np.inf


def _insight(row: pd.Series, series: str, components: dict[str, float], expected: dict[str, float]) -> str:
    """The JSON insight of a confirmed day: what moved, by how much, which detectors agree, and the component
    that moved most (on a log scale) as the likely driver."""
    known = {
        k: (v, expected[k])
        for k, v in components.items()
        if k in expected and np.isfinite(v) and np.isfinite(expected[k]) and expected[k] > 0
    }
    moved = {k: round(100.0 * (v / e - 1.0), 1) for k, (v, e) in known.items()}
    driver = max(known, key=lambda k: _log_change(*known[k])) if known else None
    has_expected = np.isfinite(row["expected"]) and row["expected"] > 0
    flags = row[["zscore_flag", "iforest_flag", "forecast_flag"]]
    return json.dumps(
        {
            "metric": series,
            "dimension": row["dimension"],
            "date": str(row["date"]),
            "value": round(float(row["value"]), 2),
            "expected": round(float(row["expected"]), 2) if has_expected else None,
            "deviation_pct": round(100.0 * (row["value"] / row["expected"] - 1.0), 1) if has_expected else None,
            "direction": "spike" if row["value"] >= (row["expected"] if has_expected else row["forecast"]) else "drop",
            "detectors": [d for d, f in zip(DETECTORS, flags, strict=True) if f],
            "likely_driver": None if driver is None else {"component": driver, "change_pct": moved[driver]},
            "components_change_pct": moved,
        },
        sort_keys=True,
        allow_nan=False,
    )


def _every_day(pdf: pd.DataFrame) -> pd.DataFrame:
    """The series on every day from its first to its last: a day without a row is a day with a value of 0 (a pair
    nobody traded), so weekly seasons and rolling windows count calendar days."""
    pdf = pdf.sort_values("date").reset_index(drop=True)
    days = pd.date_range(pdf["date"].min(), pdf["date"].max(), freq="D").date
    if len(days) == len(pdf):
        return pdf
    full = pd.DataFrame({"date": days}).merge(pdf, on="date", how="left")
    full["series"], full["dimension"] = pdf["series"].iloc[0], pdf["dimension"].iloc[0]
    full["value"] = full["value"].fillna(0.0)
    zeros = json.dumps({k: 0.0 for k in json.loads(pdf["components"].iloc[0] or "{}")})
    full["components"] = full["components"].fillna(zeros)
    return full


def detect_series(pdf: pd.DataFrame, conf: Mapping[str, Any]) -> pd.DataFrame:
    """All three detectors and the consensus for one series (one dimension value), rows sorted by date."""
    pdf = _every_day(pdf)
    values = pdf["value"].astype("float64").fillna(0.0)
    parts = pd.DataFrame([json.loads(c) if c else {} for c in pdf["components"]]).astype("float64")
    z_conf = conf["zscore"]
    window = int(z_conf["window_days"])
    expected, z, z_flag = _zscore(values.to_numpy(), window, int(z_conf["min_days"]), float(z_conf["threshold"]))
    score, iforest_flag = _iforest(_features(values, parts), conf["isolation_forest"])
    forecast, residual_z = _forecast(values, conf["forecast"])
    out = pdf[["date", "series", "dimension"]].copy()
    out["value"] = values
    out["expected"] = expected
    out["zscore"] = z
    out["zscore_flag"] = z_flag
    out["iforest_score"] = score
    out["iforest_flag"] = iforest_flag
    out["forecast"] = forecast
    out["residual_z"] = residual_z
    out["forecast_flag"] = np.nan_to_num(np.abs(residual_z)) > float(conf["forecast"]["threshold"])
    # No detector flags a day before the series has min_days of history (its first days have nothing to compare).
    warming_up = np.arange(len(out)) < int(z_conf["min_days"])
    out.loc[warming_up, ["zscore_flag", "iforest_flag", "forecast_flag"]] = False
    agreeing = out[["zscore_flag", "iforest_flag", "forecast_flag"]].sum(axis=1).astype("int32")
    out["detectors_agreeing"] = agreeing
    out["consensus_2of3"] = agreeing >= 2
    out["consensus_all"] = agreeing == 3
    prior = _prior_means(parts, z_flag, window)
    out["insight"] = [
        _insight(out.loc[i], str(out.loc[i, "series"]), parts.loc[i].to_dict(), prior.loc[i].to_dict())
        if out.loc[i, "consensus_2of3"]
        else None
        for i in out.index
    ]
    return out


def detect(series: DataFrame, conf: Mapping[str, Any]) -> DataFrame:
    """Run detect_series for every (series, dimension) in parallel on the executors."""
    settings = {k: dict(conf[k]) for k in ("zscore", "isolation_forest", "forecast")}
    return series.groupBy("series", "dimension").applyInPandas(lambda pdf: detect_series(pdf, settings), SCHEMA)
