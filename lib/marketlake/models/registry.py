"""MLflow tracking and model registry: where runs go, what a training run logs, and how scoring resolves an alias
to a model version and its bundle."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from marketlake.config import Settings
from marketlake.errors import ConfigError, InputError, first_line
from marketlake.models.bundle import BOOSTER_FILE, BUNDLE_FILE, ModelBundle
from marketlake.models.spec import ModelsConf, ModelSpec
from marketlake.models.train import TrainedModel

log = logging.getLogger(__name__)
FINGERPRINT = "marketlake.fingerprint"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: int
    run_id: str
    alias: str | None


def tracking_uri(settings: Settings, conf: ModelsConf) -> str:
    """MLFLOW_TRACKING_URI, else tracking.uri from conf, else a SQLite store under <lakehouse>/mlflow, which a
    lakehouse on distributed storage cannot hold (SQLite needs a local disk): there it is one clear error."""
    configured = os.environ.get("MLFLOW_TRACKING_URI") or conf.tracking.get("uri")
    if configured:
        return str(configured)
    root = settings.lakehouse_root
    if not root.is_local:
        raise ConfigError(
            f"lakehouse root {root} is not a local folder, so MLflow's default SQLite store cannot live in it; set "
            "tracking.uri in conf/models.yaml (an overlay in conf/<env>.yaml) or MLFLOW_TRACKING_URI to a tracking "
            "server every job reaches"
        )
    return f"sqlite:///{(root.local_path / 'mlflow' / 'mlflow.db').resolve()}"


def configure(settings: Settings, conf: ModelsConf) -> str:
    """Point MLflow at the tracking store and select the experiment (created on first use; with the local store
    its artifacts live under <lakehouse>/mlflow/artifacts). Returns the tracking URI."""
    import mlflow

    for name in ("mlflow", "alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = tracking_uri(settings, conf)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = str(conf.tracking.get("experiment") or "marketlake")
    if mlflow.get_experiment_by_name(experiment) is None:
        artifacts = None
        if uri.startswith("sqlite:///") and settings.lakehouse_root.is_local:
            artifacts = (settings.lakehouse_root.local_path / "mlflow" / "artifacts").resolve().as_uri()
        mlflow.create_experiment(experiment, artifact_location=artifacts)
    mlflow.set_experiment(experiment)
    return uri


def _calibration_figure(trained: TrainedModel) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    for name, table in trained.calibration.items():
        ax.plot([r["predicted"] for r in table], [r["observed"] for r in table], marker="o", label=name)
    ax.set_xlabel("predicted probability (test window)")
    ax.set_ylabel("observed positive rate")
    ax.set_title(f"{trained.spec.name}: calibration")
    ax.legend()
    fig.tight_layout()
    return fig


def fingerprint(spec: ModelSpec, conf: ModelsConf, data_versions: Mapping[str, int]) -> str:
    """What a training run depends on: the data versions, the model's population, label, features and split, and
    the parameters of the model and its baseline. Two runs with the same fingerprint train the same model."""
    inputs = {
        "data": dict(data_versions),
        "spec": [spec.table, spec.population, spec.label, spec.label_complete, spec.numeric, spec.categorical],
        "split": [spec.validation_days, spec.test_days],
        "xgboost": dict(conf.xgboost),
        "logistic": dict(conf.logistic),
        "drift_bins": conf.drift_bins,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def find_version(name: str, fingerprint: str) -> RegisteredModel | None:
    """The registered version trained with this fingerprint, if any."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        versions = MlflowClient().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for v in sorted(versions, key=lambda v: -int(v.version)):
        if (v.tags or {}).get(FINGERPRINT) == fingerprint:
            return RegisteredModel(name, int(v.version), str(v.run_id), None)
    return None


def logged_metrics(run_id: str) -> dict[str, dict[str, float]]:
    """The test metrics a training run logged, as {"xgboost": {...}, "baseline": {...}}."""
    import mlflow

    metrics = mlflow.get_run(run_id).data.metrics
    return {
        "xgboost": {k.removeprefix("test_"): v for k, v in metrics.items() if k.startswith("test_")},
        "baseline": {k.removeprefix("baseline_test_"): v for k, v in metrics.items() if k.startswith("baseline_test_")},
    }


def version_metrics(name: str, version: int) -> dict[str, float]:
    """The test metrics of a registered model version's training run (empty when it logged none)."""
    from mlflow import MlflowClient

    run_id = MlflowClient().get_model_version(name, str(version)).run_id
    return logged_metrics(run_id)["xgboost"] if run_id else {}


def log_and_register(
    trained: TrainedModel,
    input_example: Any,
    data_versions: Mapping[str, int],
    alias: str | None,
    fingerprint: str,
) -> RegisteredModel:
    """Log a training run (parameters, windows, data versions, features, metrics of the model and its baseline,
    importance, calibration plot, the model with its signature and the package code it imports), register the
    model as a new version and, when alias is given, point the alias at it."""
    import mlflow
    from mlflow import MlflowClient

    spec = trained.spec
    with mlflow.start_run(run_name=f"{spec.name}-{trained.windows.test[1]}") as run:
        mlflow.set_tags({"model": spec.name, "table": f"gold.{spec.table}", FINGERPRINT: fingerprint})
        mlflow.log_params({f"xgb_{k}": v for k, v in trained.params.items()})
        mlflow.log_params(trained.windows.as_params())
        mlflow.log_params({f"data_version.{table}": v for table, v in data_versions.items()})
        mlflow.log_params({f"rows_{split}": int(r["rows"]) for split, r in trained.rows.items()})
        mlflow.log_params({"features": len(spec.features), "daily_budget_k": spec.daily_budget})
        for model, metrics in trained.metrics.items():
            prefix = "test_" if model == "xgboost" else f"{model}_test_"
            mlflow.log_metrics({prefix + k: v for k, v in metrics.items()})
        mlflow.log_dict({"numeric": list(spec.numeric), "categorical": list(spec.categorical)}, "features.json")
        mlflow.log_dict(trained.importance, "feature_importance.json")
        mlflow.log_metrics({f"seconds_{k}": v for k, v in trained.seconds.items()})
        mlflow.log_figure(_calibration_figure(trained), "calibration.png")
        with tempfile.TemporaryDirectory() as tmp:
            saved = trained.bundle.save(Path(tmp) / "bundle")
            package = served_package(Path(tmp) / "code")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(package / "models" / "served.py"),
                artifacts={"booster": str(saved / BOOSTER_FILE), "bundle": str(saved / BUNDLE_FILE)},
                code_paths=[str(package)],
                signature=_signature(trained),
                input_example=input_example,
                pip_requirements=_requirements(),
                registered_model_name=spec.registered_name,
            )
        version = int(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(spec.registered_name, str(version), FINGERPRINT, fingerprint)
    if alias:
        client.set_registered_model_alias(spec.registered_name, alias, str(version))
    log.info("%s: registered %s version %d (run %s)", spec.name, spec.registered_name, version, run.info.run_id)
    return RegisteredModel(spec.registered_name, version, run.info.run_id, alias)


def served_package(directory: Path) -> Path:
    """A copy of the whole marketlake package as directory/marketlake, logged with the model (MLflow code_paths):
    loading the registered model then needs xgboost, pandas, numpy and mlflow, not an installed marketlake. The
    whole package, not only the modules the model imports, because MLflow puts it first on sys.path: a process
    that loads the model and then imports other marketlake modules finds them in the same version. Copied through
    importlib.resources, so a package imported from a zip (spark-submit's --py-files) is copied the same way."""
    target = directory / "marketlake"
    _copy_tree(resources.files("marketlake"), target)
    return target


def _copy_tree(source: Traversable, target: Path) -> None:
    target.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.is_dir():
            if entry.name != "__pycache__":
                _copy_tree(entry, target / entry.name)
        elif not entry.name.endswith(".pyc"):
            (target / entry.name).write_bytes(entry.read_bytes())


def _signature(trained: TrainedModel) -> Any:
    """Inputs: numeric features as doubles and categoricals as strings, every one optional (missing values are
    part of the model); outputs: raw_score and the calibrated score."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    spec = trained.spec
    inputs = [ColSpec("double", c, required=False) for c in spec.numeric]
    inputs += [ColSpec("string", c, required=False) for c in spec.categorical]
    return ModelSignature(Schema(inputs), Schema([ColSpec("double", "raw_score"), ColSpec("double", "score")]))


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("xgboost-cpu", "pandas", "numpy", "mlflow")]


def set_alias(name: str, alias: str, version: int) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().set_registered_model_alias(name, alias, str(version))
    except MlflowException as exc:
        raise InputError(f"cannot point {name}@{alias} at version {version}: {first_line(exc)}") from None


def resolve(name: str, alias: str | None = None, version: int | None = None) -> tuple[int, ModelBundle]:
    """The version an alias (or an explicit version) names, and its bundle, loaded through the pyfunc model."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        if version is None:
            if alias is None:
                raise InputError("give an alias or a version")
            version = int(client.get_model_version_by_alias(name, alias).version)
        else:
            client.get_model_version(name, str(version))
    except MlflowException as exc:
        what = f"version {version}" if alias is None else f"alias @{alias}"
        raise InputError(
            f"model {name} has no {what} in the registry ({first_line(exc)}); train it first: jobs/train.py"
        ) from None
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return version, model.unwrap_python_model().bundle
