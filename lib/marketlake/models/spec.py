"""Model specs and parameters (conf/models.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from marketlake.config import load_spec
from marketlake.errors import InputError

DRIFT_TABLE = "model_drift"
IMPORTANCE_TABLE = "model_feature_importance"
PERFORMANCE_TABLE = "model_performance"


@dataclass(frozen=True)
class PolicyRule:
    """One intervention rule. `marketing`: the intervention is marketing (an offer by modal or email), which only a
    customer with marketing consent may receive; service messages (order status) are not marketing."""

    segment: str
    when: str
    min_score: float
    max_score: float
    intervention: str
    channel: str
    escalation: str
    marketing: bool


@dataclass(frozen=True)
class Consent:
    """Where a model's rows find the customer's current marketing consent: `marketing_opt_in` of silver.<table>,
    joined on `key` (a column the scores carry)."""

    table: str
    key: str


@dataclass(frozen=True)
class ModelSpec:
    """One model: the gold table it learns from, its population, label, features and what scoring writes."""

    name: str
    registered_name: str
    table: str
    date: str
    keys: tuple[str, ...]
    carry: tuple[str, ...]
    label: str
    population: str
    label_complete: str
    validation_days: int
    test_days: int
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    scores_table: str
    decisions_table: str
    daily_budget: int
    business: Mapping[str, Any]
    reasons: Mapping[str, str]
    policy: tuple[PolicyRule, ...]
    policy_default: Mapping[str, str]
    consent: Consent | None = None

    @property
    def features(self) -> tuple[str, ...]:
        """Model inputs in vector order: numeric features, then categorical ones (each as one index column)."""
        return self.numeric + self.categorical


@dataclass(frozen=True)
class ModelsConf:
    models: Mapping[str, ModelSpec]
    tracking: Mapping[str, Any]
    xgboost: Mapping[str, Any]
    logistic: Mapping[str, Any]
    risk_bands: tuple[tuple[str, float], ...]
    risk_band_default: str
    drift_bins: int
    psi_threshold: float
    anomalies: Mapping[str, Any]
    monitoring: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def spec(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise InputError(f"unknown model '{name}'; known models: {', '.join(self.models)}")
        return self.models[name]

    def tables(self) -> dict[str, str]:
        """The gold tables the model jobs write, name -> partition column."""
        written = {t: m.date for m in self.models.values() for t in (m.scores_table, m.decisions_table)}
        return {
            **written,
            DRIFT_TABLE: "date",
            IMPORTANCE_TABLE: "model_name",
            str(self.anomalies["table"]): "date",
            PERFORMANCE_TABLE: "week_start",
        }

    def select(self, names: str) -> list[ModelSpec]:
        if names.strip() == "all":
            return list(self.models.values())
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        if not wanted:
            raise InputError("give model names (comma-separated) or all")
        return [self.spec(n) for n in wanted]


def _rule(model: str, r: Mapping[str, Any]) -> PolicyRule:
    if not isinstance(r.get("marketing"), bool):
        raise ValueError(f"model {model}: policy rule '{r.get('segment')}' must say marketing: true or false")
    return PolicyRule(**{**r, "when": str(r.get("when", "true"))})


def _model(name: str, m: Mapping[str, Any]) -> ModelSpec:
    consent = m.get("consent")
    spec = ModelSpec(
        name=name,
        registered_name=str(m["registered_name"]),
        table=str(m["table"]),
        date=str(m["date"]),
        keys=tuple(m["keys"]),
        carry=tuple(m.get("carry", ())),
        label=str(m["label"]),
        population=str(m.get("population", "true")),
        label_complete=str(m.get("label_complete", "true")),
        validation_days=int(m["split"]["validation_days"]),
        test_days=int(m["split"]["test_days"]),
        numeric=tuple(m["numeric"]),
        categorical=tuple(m.get("categorical", ())),
        scores_table=str(m["scores_table"]),
        decisions_table=str(m["decisions_table"]),
        daily_budget=int(m["daily_budget"]),
        business=MappingProxyType(dict(m["business"])),
        reasons=MappingProxyType({str(k): str(v) for k, v in m["reasons"].items()}),
        policy=tuple(_rule(name, r) for r in m.get("policy", ())),
        policy_default=MappingProxyType({str(k): str(v) for k, v in m["policy_default"].items()}),
        consent=Consent(str(consent["table"]), str(consent["key"])) if consent else None,
    )
    unexplained = [f for f in spec.features if f not in spec.reasons]
    if unexplained:
        raise ValueError(f"model {name}: features without a reason text: {', '.join(unexplained)}")
    if any(r.marketing for r in spec.policy) and spec.consent is None:
        raise ValueError(f"model {name}: marketing policy rules need a consent source (consent: {{table, key}})")
    if spec.consent is not None and spec.consent.key not in (*spec.keys, *spec.carry):
        raise ValueError(f"model {name}: the consent key {spec.consent.key} must be one of its keys or carry columns")
    return spec


def load_models(conf_dir: Path, overlay: Mapping[str, Any] | None = None) -> ModelsConf:
    """conf/models.yaml with an environment's overlay (Settings.overlay("models")) merged over it."""
    return load_spec(conf_dir / "models.yaml", overlay, "model spec", _models)


def _models(raw: Mapping[str, Any]) -> ModelsConf:
    return ModelsConf(
        models=MappingProxyType({name: _model(name, m) for name, m in raw["models"].items()}),
        tracking=MappingProxyType(dict(raw.get("tracking") or {})),
        xgboost=MappingProxyType(dict(raw["xgboost"])),
        logistic=MappingProxyType(dict(raw["logistic"])),
        risk_bands=tuple((str(b["name"]), float(b["from"])) for b in raw["risk_bands"]),
        risk_band_default=str(raw["risk_band_default"]),
        drift_bins=int(raw["drift"]["bins"]),
        psi_threshold=float(raw["drift"]["psi_threshold"]),
        anomalies=MappingProxyType(dict(raw["anomalies"])),
        monitoring=MappingProxyType(dict(raw["monitoring"])),
    )
