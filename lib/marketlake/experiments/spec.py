"""Experiment specs (conf/experiments.yaml): the design, the model whose decisions expose units, and the metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from marketlake.config import load_spec
from marketlake.errors import ConfigError
from marketlake.experiments.assign import Design
from marketlake.experiments.readout import Plan

DECIDED = ("intervention", "channel", "escalation")


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment: its design, the model whose decisions expose units, the unit column of those decisions, which
    rows expose (those whose policy picked an intervention, or each day's `daily_top` highest scores with marketing
    consent, treated with the policy's pick, else `fallback`), how many days outcomes take to become final, and
    each metric's plan and per-unit expression."""

    design: Design
    model: str
    unit: str
    maturity_days: int
    metrics: Mapping[str, Plan]
    per_unit: Mapping[str, str]
    about: Mapping[str, str]
    daily_top: int | None = None
    fallback: Mapping[str, str] | None = None

    @property
    def name(self) -> str:
        return self.design.name

    @property
    def treated(self) -> tuple[str, ...]:
        """The variants that receive the intervention: every one after control."""
        return tuple(v for v, _ in self.design.variants[1:])


def _experiment(name: str, raw: Mapping[str, Any]) -> ExperimentSpec:
    variants = tuple((str(v), float(w)) for v, w in dict(raw["variants"]).items())
    alpha, power = float(raw.get("alpha", 0.05)), float(raw.get("power", 0.8))
    metrics, per_unit, about = {}, {}, {}
    for metric, m in dict(raw["metrics"]).items():
        kind = str(m["kind"])
        if kind not in ("conversion", "value"):
            raise ValueError(f"metric {metric}: kind must be conversion or value, not {kind}")
        metrics[metric] = Plan(
            kind, float(m["mde"]), float(m.get("baseline", 0.0)), float(m.get("sd", 0.0)), alpha, power
        )
        per_unit[metric] = str(m["per_unit"])
        about[metric] = str(m.get("about", ""))
    exposure = raw.get("exposure", "policy")
    daily_top = None if exposure == "policy" else int(dict(exposure)["daily_top"])
    fallback = None if daily_top is None else MappingProxyType({k: str(raw["fallback"][k]) for k in DECIDED})
    return ExperimentSpec(
        design=Design(name, variants, float(raw.get("holdout", 0.0))),
        daily_top=daily_top,
        fallback=fallback,
        model=str(raw["model"]),
        unit=str(raw["unit"]),
        maturity_days=int(raw["maturity_days"]),
        metrics=MappingProxyType(metrics),
        per_unit=MappingProxyType(per_unit),
        about=MappingProxyType(about),
    )


def load_experiments(conf_dir: Path, overlay: Mapping[str, Any] | None = None) -> dict[str, ExperimentSpec]:
    """conf/experiments.yaml (with an environment's overlay merged over it), by experiment name."""
    return load_spec(
        conf_dir / "experiments.yaml",
        overlay,
        "experiment spec",
        lambda raw: {name: _experiment(name, e) for name, e in dict(raw["experiments"]).items()},
    )


def for_model(experiments: Mapping[str, ExperimentSpec], model: str) -> ExperimentSpec | None:
    """The experiment run on a model's decisions (at most one per model), or None."""
    found = [e for e in experiments.values() if e.model == model]
    if len(found) > 1:
        raise ConfigError(
            f"model {model}: more than one experiment on its decisions ({', '.join(e.name for e in found)})"
        )
    return found[0] if found else None
