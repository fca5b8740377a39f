"""The registered MLflow model, logged as code (models-from-code): a ModelBundle behind the pyfunc interface.
`mlflow.pyfunc.load_model("models:/<name>@champion").predict(frame)` returns raw_score and the calibrated score for
rows of raw feature columns. The model carries the marketlake package (registry.served_package, as MLflow
code_paths), so it loads where marketlake is not installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from marketlake.models.bundle import ModelBundle


class BundleModel(mlflow.pyfunc.PythonModel):
    # The logged signature is the schema; predict's type hints are not (MLflow would otherwise wrap predict in its
    # type-hint validation and warn that there are none).
    _skip_type_hint_validation = True
    bundle: ModelBundle

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts["booster"]), Path(context.artifacts["bundle"]))

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return self.bundle.score(pd.DataFrame(model_input))


mlflow.models.set_model(BundleModel())
