"""The registered MLflow model, logged as code (models-from-code): a ModelBundle behind the pyfunc interface.
`mlflow.pyfunc.load_model("models:/<name>@champion").predict(frame)` returns raw_score and the calibrated score for
rows of raw feature columns."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from marketlake.models.bundle import ModelBundle

# predict has no type hints on purpose: MLflow would read them as the input schema, and the logged signature is
# the schema. MLflow warns about that when the class is defined.
warnings.filterwarnings("ignore", message="Add type hints to the `predict` method", category=UserWarning)


class BundleModel(mlflow.pyfunc.PythonModel):
    bundle: ModelBundle

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts["booster"]), Path(context.artifacts["bundle"]))

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return self.bundle.score(pd.DataFrame(model_input))


mlflow.models.set_model(BundleModel())
