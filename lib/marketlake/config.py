"""Layered configuration: conf/base.yaml + conf/<env>.yaml, loaded once into frozen objects.

The other conf files (sources, silver, quality, gold, models, experiments) are layered the same way:
`overlays.<file>` in conf/<env>.yaml is merged over conf/<file>.yaml, so an environment changes one parameter
without copying a file.
MARKETLAKE_CONF_DIR names another conf directory (every file is read from it).

Environment overrides, applied after the files: MARKETLAKE_LAKEHOUSE (lakehouse root), MARKETLAKE_LANDING
(landing zone), MARKETLAKE_SPARK_MASTER (Spark master). The root and the landing zone are local folders (relative
paths resolve against the working directory) or URIs of a distributed filesystem or object store (REMOTE_SCHEMES).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

from marketlake.errors import ConfigError, InputError
from marketlake.location import Location

T = TypeVar("T")

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
DEFAULT_ENV = "local"
# Conf files that are not environments (conf/<env>.yaml), in the order the pipeline reads them.
CONF_FILES = ("base", "sources", "silver", "quality", "gold", "models", "experiments", "fraud")


@dataclass(frozen=True)
class SourceSpec:
    """The column contract of one landing entity (conf/sources.yaml)."""

    domain: str
    entity: str
    format: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    required: tuple[str, ...]
    numeric: tuple[str, ...]
    positive: tuple[str, ...]
    references: Mapping[str, str]
    event_time: str

    @property
    def bronze_table(self) -> str:
        return f"bronze.{self.domain}_{self.entity}"


@dataclass(frozen=True)
class SparkSettings:
    app_name: str
    master: str
    conf: Mapping[str, str]


@dataclass(frozen=True)
class Settings:
    env: str
    lakehouse_root: Location
    landing_dir: Location
    databases: tuple[str, ...]
    spark: SparkSettings
    generator: Mapping[str, Any]
    bronze: Mapping[str, Any]
    silver: Mapping[str, Any]
    privacy: Mapping[str, Any]
    maintenance: Mapping[str, Any]
    sources: Mapping[str, Mapping[str, SourceSpec]] = field(repr=False)
    conf_dir: Path = CONF_DIR
    overlays: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    checkpoints: str = "auto"  # auto, local or reliable: see lakehouse.checkpoints in conf/base.yaml
    metastore_server: str | None = None  # the JDBC URL of a metastore every driver reaches (metastore: in conf)

    def __post_init__(self) -> None:
        """A path or URI given for the root or the landing zone (dataclasses.replace with a tmp_path) becomes a
        Location, as load_settings makes them."""
        object.__setattr__(self, "lakehouse_root", Location.of(self.lakehouse_root))
        object.__setattr__(self, "landing_dir", Location.of(self.landing_dir))

    @property
    def metastore_dir(self) -> Path:
        """The embedded Derby metastore's folder, <root>/_metastore. Derby needs a local disk, so a lakehouse on
        distributed storage has none: its catalog lives in a metastore server (one clear error naming the fix)."""
        if not self.lakehouse_root.is_local:
            raise ConfigError(
                f"lakehouse root {self.lakehouse_root} is not a local folder, so the embedded metastore (Derby, on "
                "local disk) cannot live in it; use a metastore every driver reaches: metastore: {kind: server, url: "
                "...} in conf/<env>.yaml (make metastore-server), or spark.hadoop.javax.jdo.option.ConnectionURL"
            )
        return self.lakehouse_root.local_path / "_metastore"

    @property
    def warehouse_dir(self) -> Location:
        return self.lakehouse_root / "_warehouse"

    @property
    def checkpoint_dir(self) -> Location:
        """Reliable checkpoints' folder; each Spark application writes under a folder of its own inside it."""
        return self.lakehouse_root / "_checkpoints"

    def overlay(self, name: str) -> dict[str, Any]:
        """The environment's overrides for conf/<name>.yaml (empty when it has none)."""
        return _thaw(self.overlays.get(name) or {})

    def database_location(self, database: str) -> Location:
        return self.lakehouse_root / database

    def domains(self) -> tuple[str, ...]:
        return tuple(self.sources)

    def domain_sources(self, domain: str) -> Mapping[str, SourceSpec]:
        if domain not in self.sources:
            raise ConfigError(f"unknown domain '{domain}'; known domains: {', '.join(self.sources)}")
        return self.sources[domain]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_spec(path: Path, overlay: Mapping[str, Any] | None, what: str, build: Callable[[dict[str, Any]], T]) -> T:
    """A spec file of conf/ with an environment's overlay merged over it, built by `build`; a missing file, bad YAML
    or a malformed spec (a missing key, a wrong type or value) is one ConfigError naming the file."""
    try:
        return build(deep_merge(yaml.safe_load(path.read_text()) or {}, overlay or {}))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: malformed {what} ({exc})") from None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge `override` into a copy of `base` (mappings merge, anything else replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _source_spec(domain: str, entity: str, raw: Mapping[str, Any]) -> SourceSpec:
    try:
        columns = tuple(raw["columns"])
        spec = SourceSpec(
            domain=domain,
            entity=entity,
            format=str(raw["format"]),
            columns=columns,
            key=tuple(raw["key"]),
            required=tuple(raw.get("required", ())),
            numeric=tuple(raw.get("numeric", ())),
            positive=tuple(raw.get("positive", ())),
            references=MappingProxyType(dict(raw.get("references") or {})),
            event_time=str(raw["event_time"]),
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"sources.yaml: {domain}.{entity} is missing or has a malformed field {exc}") from None
    named = set(spec.key) | set(spec.required) | set(spec.numeric) | set(spec.references) | {spec.event_time}
    unknown = sorted(named - set(columns))
    if unknown:
        raise ConfigError(f"sources.yaml: {domain}.{entity} names columns not in its contract: {unknown}")
    if spec.format not in ("jsonl", "csv"):
        raise ConfigError(f"sources.yaml: {domain}.{entity} has format '{spec.format}'; use jsonl or csv")
    return spec


# Distributed filesystems and object stores a lakehouse (or its landing zone) may live on: Hadoop's FileSystem
# reads and writes them for Spark and Delta, delta-rs for marketlake.lakeread.
REMOTE_SCHEMES = ("hdfs", "s3a", "s3", "abfss", "gs")


def _resolve(path: str | Location, what: str) -> Location:
    """A local folder as an absolute path (`file:///abs` is the same folder), or a URI of a filesystem in
    REMOTE_SCHEMES as written. Any other form is one clear error, before anything is created."""
    text = os.path.expanduser(str(path))
    try:
        location = Location.of(text)
    except ValueError as exc:
        raise ConfigError(f"{what} {text}: {exc}") from None
    if location.is_local:
        return Location.of(location.local_path.resolve())
    if location.scheme not in REMOTE_SCHEMES:
        schemes = ", ".join(f"{s}://" for s in REMOTE_SCHEMES)
        raise ConfigError(
            f"{what} {text}: {location.scheme}: is not a filesystem marketlake reads and writes; use a local folder, "
            f"a file:/// URI or one of {schemes}"
        )
    return location


def load_settings(env: str | None = None, conf_dir: Path | None = None) -> Settings:
    """Load base + environment config (env from the argument, MARKETLAKE_ENV, or 'local')."""
    env = env or os.environ.get("MARKETLAKE_ENV") or DEFAULT_ENV
    conf_dir = conf_dir or Path(os.environ.get("MARKETLAKE_CONF_DIR", CONF_DIR))
    env_file = conf_dir / f"{env}.yaml"
    if not env_file.is_file():
        known = sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem not in CONF_FILES)
        raise ConfigError(f"unknown config environment '{env}' (no {env_file}); choose one of {known}")
    raw = deep_merge(_read_yaml(conf_dir / "base.yaml"), _read_yaml(env_file))
    overlays = raw.pop("overlays", None) or {}
    if not isinstance(overlays, Mapping) or set(overlays) - set(CONF_FILES[1:]):
        raise ConfigError(f"{env_file}: overlays must map conf files ({', '.join(CONF_FILES[1:])}) to overrides")
    sources_raw = deep_merge(_read_yaml(conf_dir / "sources.yaml"), overlays.get("sources") or {})
    try:
        lakehouse = raw["lakehouse"]
        spark = raw["spark"]
        root = _resolve(os.environ.get("MARKETLAKE_LAKEHOUSE") or lakehouse["root"], "lakehouse root")
        landing = _resolve(
            os.environ.get("MARKETLAKE_LANDING") or lakehouse.get("landing") or root / "landing", "landing folder"
        )
        spark_settings = SparkSettings(
            app_name=str(spark.get("app_name", "marketlake")),
            master=str(os.environ.get("MARKETLAKE_SPARK_MASTER") or spark["master"]),
            conf=MappingProxyType({str(k): str(v) for k, v in (spark.get("conf") or {}).items()}),
        )
        sources = {
            domain: MappingProxyType({entity: _source_spec(domain, entity, spec) for entity, spec in entities.items()})
            for domain, entities in sources_raw.items()
        }
        return Settings(
            env=env,
            lakehouse_root=root,
            landing_dir=landing,
            databases=tuple(lakehouse.get("databases", ("bronze", "silver", "gold", "ops", "quarantine"))),
            spark=spark_settings,
            generator=_freeze(raw.get("generator", {})),
            bronze=_freeze(raw.get("bronze", {})),
            silver=_freeze(raw.get("silver", {})),
            privacy=_freeze(raw.get("privacy", {})),
            maintenance=_freeze(raw.get("maintenance") or {}),
            sources=MappingProxyType(sources),
            conf_dir=conf_dir,
            overlays=_freeze(dict(overlays)),
            checkpoints=_checkpoints(lakehouse.get("checkpoints")),
            metastore_server=_metastore_server(raw.get("metastore") or {}),
        )
    except KeyError as exc:
        raise ConfigError(f"config is missing the required key {exc}") from None


CHECKPOINT_MODES = ("auto", "local", "reliable")


def _checkpoints(value: object) -> str:
    mode = str(value or "auto").strip().lower()
    if mode not in CHECKPOINT_MODES:
        raise ConfigError(f"lakehouse.checkpoints is '{value}'; choose one of {', '.join(CHECKPOINT_MODES)}")
    return mode


def _metastore_server(metastore: Mapping[str, Any]) -> str | None:
    kind = str(metastore.get("kind") or "embedded").strip().lower()
    if kind == "embedded":
        return None
    if kind != "server":
        raise ConfigError(f"metastore.kind is '{metastore.get('kind')}'; choose embedded or server")
    url = str(metastore.get("url") or "").strip()
    if not url.startswith("jdbc:"):
        raise ConfigError(f"metastore.kind is server, so metastore.url must be a JDBC URL (it is '{url}')")
    return url


def parse_date(value: str, what: str = "date") -> date:
    """Parse an ISO date given by a user, with a clear error."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} '{value}' is not a date in YYYY-MM-DD form") from None
