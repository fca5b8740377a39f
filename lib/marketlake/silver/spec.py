"""Silver table specs (conf/silver.yaml), validated against the source contracts, and the rules each table gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from marketlake.config import SourceSpec, deep_merge
from marketlake.errors import ConfigError
from marketlake.quality import Rule, load_rules

ENUM_STYLES = ("lower", "upper")
PII_TREATMENTS = ("hash", "mask", "ip")
CONFORM_STEPS = ("platform_orders",)
PARSE_RULE = Rule("record_parseable", "not_null", "quarantine", {"column": "_parseable"})


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str = "string"
    source: str | None = None
    enum: str | None = None
    pii: str | None = None
    expr: str | None = None


@dataclass(frozen=True)
class TableSpec:
    domain: str
    name: str
    key: tuple[str, ...]
    event_time: str
    sources: tuple[str, ...] = ()
    event_date: str | None = None
    columns: tuple[ColumnSpec, ...] = ()
    conform: str | None = None
    derived: str | None = None
    rebuild: bool = False

    @property
    def table(self) -> str:
        """Name in conf/quality.yaml, accounting and quarantine: <domain>_<name>."""
        return f"{self.domain}_{self.name}"

    @property
    def silver_table(self) -> str:
        return f"silver.{self.table}"


def _column(name: str, raw: Any, where: str) -> ColumnSpec:
    if isinstance(raw, str):
        return ColumnSpec(name, raw)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: column {name} must be a type or a mapping")
    col = ColumnSpec(
        name, str(raw.get("type", "string")), raw.get("source"), raw.get("enum"), raw.get("pii"), raw.get("expr")
    )
    if col.enum not in (None, *ENUM_STYLES):
        raise ConfigError(f"{where}: column {name} has enum {col.enum!r}; use one of {ENUM_STYLES}")
    if col.pii not in (None, *PII_TREATMENTS):
        raise ConfigError(f"{where}: column {name} has pii {col.pii!r}; use one of {PII_TREATMENTS}")
    return col


def parse_table_specs(
    raw: Mapping[str, Any], sources: Mapping[str, Mapping[str, SourceSpec]]
) -> dict[str, tuple[TableSpec, ...]]:
    """Table specs per domain, in build order, checked against the source contracts."""
    specs: dict[str, tuple[TableSpec, ...]] = {}
    for domain, tables in raw.items():
        if domain not in sources:
            raise ConfigError(f"silver.yaml: unknown domain {domain!r}")
        built: list[TableSpec] = []
        for name, t in (tables or {}).items():
            where = f"silver.yaml: {domain}.{name}"
            try:
                columns = tuple(_column(c, v, where) for c, v in (t.get("columns") or {}).items())
                spec = TableSpec(
                    domain=domain,
                    name=name,
                    key=tuple(t["key"]),
                    event_time=str(t["event_time"]),
                    sources=tuple(t.get("sources") or ()),
                    event_date=t.get("event_date"),
                    columns=columns,
                    conform=t.get("conform"),
                    derived=t.get("derived"),
                    rebuild=bool(t.get("rebuild", False)),
                )
            except (KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(f"{where} is missing or has a malformed field {exc}") from None
            unknown = [s for s in spec.sources if s not in sources[domain]]
            if unknown:
                raise ConfigError(f"{where} reads unknown bronze entities {unknown}")
            if spec.derived and spec.derived not in [b.name for b in built]:
                raise ConfigError(f"{where} is derived from {spec.derived!r}, which must be listed before it")
            if not (spec.derived or spec.sources):
                raise ConfigError(f"{where} needs `sources` or `derived`")
            if spec.conform and spec.conform not in CONFORM_STEPS:
                raise ConfigError(f"{where} names conform step {spec.conform!r}; known: {CONFORM_STEPS}")
            if spec.columns:
                names = {c.name for c in spec.columns}
                contract = set().union(*(sources[domain][s].columns for s in spec.sources))
                missing = sorted((set(spec.key) | {spec.event_time, spec.event_date or spec.event_time}) - names)
                foreign = sorted({c.source or c.name for c in spec.columns if not c.expr} - contract)
                if missing or foreign:
                    raise ConfigError(f"{where}: key/time columns not declared {missing}, not in contract {foreign}")
            built.append(spec)
        specs[domain] = tuple(built)
    return specs


def load_table_specs(
    conf_dir: Path, sources: Mapping[str, Mapping[str, SourceSpec]], overlay: Mapping[str, Any] | None = None
) -> dict[str, tuple[TableSpec, ...]]:
    path = conf_dir / "silver.yaml"
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read silver table specs {path}: {exc}") from None
    return parse_table_specs(deep_merge(raw, overlay or {}), sources)


def table_rules(
    spec: TableSpec, sources: Mapping[str, SourceSpec], configured: Mapping[str, tuple[Rule, ...]]
) -> tuple[Rule, ...]:
    """Every rule a table is checked with: parseable, required fields present, typed values castable, then the
    configured rules of conf/quality.yaml."""
    if spec.derived:
        return configured.get(spec.table, ())
    rules = [PARSE_RULE]
    required: dict[str, list[str]] = {}
    for entity in spec.sources:
        for field in sources[entity].required:
            required.setdefault(field, []).append(entity)
    for field, entities in required.items():
        if len(entities) == len(spec.sources):
            rules.append(Rule(f"{field}_present", "not_null", "quarantine", {"column": f"_raw_{field}"}))
        else:  # a field only some of the sources carry (platform payloads)
            listed = ", ".join(f"'{e}'" for e in entities)
            expr = f"_source_entity NOT IN ({listed}) OR nullif(trim(_raw_{field}), '') IS NOT NULL"
            rules.append(Rule(f"{field}_present", "expression", "quarantine", {"expr": expr}))
    for c in spec.columns:
        if c.type != "string" and not c.expr:
            params = {"column": f"_raw_{c.source or c.name}", "type": c.type}
            rules.append(Rule(f"{c.name}_wrong_type", "castable", "quarantine", params))
    rules += configured.get(spec.table, ())
    names = [r.name for r in rules]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ConfigError(f"quality rules for {spec.table}: names clash with generated rules {clashes}")
    return tuple(rules)


def load_all(
    conf_dir: Path,
    sources: Mapping[str, Mapping[str, SourceSpec]],
    overlays: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, tuple[TableSpec, ...]], dict[str, tuple[Rule, ...]]]:
    """Table specs per domain and the full rule list per table (<domain>_<name>), with an environment's overlays
    for silver.yaml and quality.yaml (keyed by file name) merged over the files."""
    overlays = overlays or {}
    specs = load_table_specs(conf_dir, sources, overlays.get("silver"))
    configured = load_rules(conf_dir / "quality.yaml", overlays.get("quality"))
    known = {s.table for domain in specs.values() for s in domain}
    stray = sorted(set(configured) - known)
    if stray:
        raise ConfigError(f"quality.yaml has rules for tables silver.yaml does not define: {stray}")
    rules = {s.table: table_rules(s, sources[s.domain], configured) for d in specs.values() for s in d}
    return specs, rules
