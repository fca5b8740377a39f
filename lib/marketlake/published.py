"""Every gold table the jobs publish, with its partition column: what summaries and retention walk."""

from __future__ import annotations

from marketlake import forecast
from marketlake.clv.build import FITS, HOLDOUT, VALUES
from marketlake.config import Settings
from marketlake.experiments.run import ASSIGNMENTS, READOUTS
from marketlake.fraud.run import EVALUATION, SCORES
from marketlake.gold.spec import load_gold
from marketlake.models.spec import load_models


def gold_partitions(settings: Settings) -> dict[str, str]:
    """Table name -> partition column of gold_build's tables (conf/gold.yaml) and those of the model, experiment,
    lifetime-value, forecast and fraud jobs."""
    partitions = {s.name: s.partition for s in load_gold(settings.conf_dir, settings.overlay("gold")).tables.values()}
    partitions.update(load_models(settings.conf_dir, settings.overlay("models")).tables())
    published = (ASSIGNMENTS, READOUTS, VALUES, FITS, HOLDOUT, forecast.DEMAND, forecast.KPI, forecast.BACKTEST)
    published += (SCORES, EVALUATION)
    partitions.update({spec.name: spec.partition for spec in published})
    return partitions
