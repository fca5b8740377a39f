"""A trained model as one self-contained bundle: the xgboost booster, the feature encoding, the isotonic
calibration and the training distribution used for drift. The registry stores it as an MLflow pyfunc model;
scoring applies it to Spark partitions with the same numpy code the pyfunc uses."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

BOOSTER_FILE = "booster.json"
BUNDLE_FILE = "bundle.json"


@dataclass(frozen=True)
class Calibration:
    """Isotonic map from the booster's probability to a calibrated one: linear between the fitted points, flat
    beyond them (what Spark's IsotonicRegressionModel predicts)."""

    boundaries: tuple[float, ...]
    predictions: tuple[float, ...]

    def apply(self, raw: np.ndarray) -> np.ndarray:
        if not self.boundaries:
            return raw
        return np.interp(raw, self.boundaries, self.predictions)


@dataclass(frozen=True)
class ModelBundle:
    model: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    levels: Mapping[str, Sequence[str]]
    calibration: Calibration
    # Per feature: the bucket edges of its training distribution and the share of training rows per bucket
    # (bucket -1 = missing), as {"edges": [...], "shares": {"-1": s, "0": s, ...}}.
    reference: Mapping[str, Mapping[str, Any]]
    booster_json: bytes = field(repr=False)

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @cached_property
    def booster(self) -> xgb.Booster:
        booster = xgb.Booster()
        booster.load_model(bytearray(self.booster_json))
        return booster

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode raw feature columns exactly as features.feature_array does in Spark."""
        columns = [pd.to_numeric(frame[c], errors="coerce").astype("float64").to_numpy() for c in self.numeric]
        for c in self.categorical:
            index = {v: float(i) for i, v in enumerate(self.levels[c])}
            values = frame[c].map(lambda v, index=index: index.get(str(v), np.nan) if v is not None else np.nan)
            columns.append(values.astype("float64").to_numpy())
        return np.column_stack(columns) if columns else np.empty((len(frame), 0))

    def predict(self, x: np.ndarray, contributions: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Booster probability per row and, when asked, SHAP contributions per feature (bias column dropped)."""
        data = xgb.DMatrix(x, missing=np.nan, feature_names=list(self.features))
        raw = self.booster.predict(data)
        contribs = self.booster.predict(data, pred_contribs=True)[:, :-1] if contributions else None
        return raw.astype("float64"), contribs

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Calibrated probability for rows of raw features (what the registered pyfunc model returns)."""
        raw, _ = self.predict(self.matrix(frame))
        return pd.DataFrame({"raw_score": raw, "score": self.calibration.apply(raw)})

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / BOOSTER_FILE).write_bytes(self.booster_json)
        meta = {k: v for k, v in asdict(self).items() if k != "booster_json"}
        (directory / BUNDLE_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
        return directory

    @classmethod
    def load(cls, booster_path: Path, bundle_path: Path) -> ModelBundle:
        meta = json.loads(bundle_path.read_text())
        calibration = meta.pop("calibration")
        return cls(
            model=meta["model"],
            numeric=tuple(meta["numeric"]),
            categorical=tuple(meta["categorical"]),
            levels={k: list(v) for k, v in meta["levels"].items()},
            calibration=Calibration(tuple(calibration["boundaries"]), tuple(calibration["predictions"])),
            reference=meta["reference"],
            booster_json=booster_path.read_bytes(),
        )


def top_reasons(contribs: np.ndarray, features: Sequence[str], texts: Mapping[str, str], k: int = 3) -> list[list]:
    """Per row, the k features that push the score up most (largest SHAP contribution first), with their text."""
    order = np.argsort(-contribs, axis=1, kind="stable")[:, :k]
    return [
        [{"feature": features[j], "contribution": float(row[j]), "text": texts[features[j]]} for j in idx]
        for row, idx in zip(contribs, order, strict=True)
    ]
