"""Fraud scoring settings (conf/fraud.yaml): the thresholds, both forests' parameters and one spec per case."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from marketlake.config import load_spec
from marketlake.errors import InputError


@dataclass(frozen=True)
class FraudCase:
    """What one kind of row is scored on: its features (numeric, then categorical), the reason text per feature,
    how many days its label takes to become final, the test window and the rule baseline (described)."""

    name: str
    about: str
    label_days: int
    test_days: int
    rule: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    reasons: Mapping[str, str]

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


@dataclass(frozen=True)
class FraudConf:
    block: float
    review: float
    history_days: int
    top_factors: int
    forest: Mapping[str, Any]
    isolation_forest: Mapping[str, Any]
    cases: Mapping[str, FraudCase]

    def select(self, names: str) -> list[FraudCase]:
        if names.strip() == "all":
            return list(self.cases.values())
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in self.cases]
        if unknown or not wanted:
            raise InputError(
                f"unknown fraud case {', '.join(unknown) or '(none given)'}; known cases: {', '.join(self.cases)} "
                "(or all)"
            )
        return [self.cases[n] for n in wanted]


def _case(name: str, raw: Mapping[str, Any]) -> FraudCase:
    case = FraudCase(
        name=name,
        about=str(raw["about"]),
        label_days=int(raw["label_days"]),
        test_days=int(raw["test_days"]),
        rule=str(raw["rule"]),
        numeric=tuple(map(str, raw["numeric"])),
        categorical=tuple(map(str, raw.get("categorical", ()))),
        reasons=MappingProxyType({str(k): str(v) for k, v in dict(raw["reasons"]).items()}),
    )
    unexplained = [f for f in case.features if f not in case.reasons]
    if unexplained:
        raise ValueError(f"fraud case {name}: features without a reason text: {', '.join(unexplained)}")
    return case


def load_fraud(conf_dir: Path, overlay: Mapping[str, Any] | None = None) -> FraudConf:
    """conf/fraud.yaml with an environment's overlay (Settings.overlay("fraud")) merged over it."""
    return load_spec(conf_dir / "fraud.yaml", overlay, "fraud spec", _fraud)


def _fraud(raw: Mapping[str, Any]) -> FraudConf:
    block, review = float(raw["thresholds"]["block"]), float(raw["thresholds"]["review"])
    if not 0 < review < block <= 1:
        raise ValueError(f"thresholds need 0 < review < block <= 1, got review {review}, block {block}")
    return FraudConf(
        block=block,
        review=review,
        history_days=int(raw["history_days"]),
        top_factors=int(raw["top_factors"]),
        forest=MappingProxyType(dict(raw["forest"])),
        isolation_forest=MappingProxyType(dict(raw["isolation_forest"])),
        cases=MappingProxyType({name: _case(name, c) for name, c in dict(raw["cases"]).items()}),
    )
