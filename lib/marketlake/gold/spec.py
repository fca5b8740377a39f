"""Gold table specs and parameters (conf/gold.yaml), and the date arithmetic of a partitioned build."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from marketlake.errors import ConfigError, InputError


@dataclass(frozen=True)
class GoldSpec:
    name: str
    partition: str
    grain: str
    inputs: tuple[str, ...]
    about: str
    lookback: int = 0
    lookahead: int = 0
    monthly: bool = False

    @property
    def table(self) -> str:
        return f"gold.{self.name}"

    def partitions(self, start: date, end: date) -> tuple[date, date]:
        """The first and last partition date a build of [start, end] replaces (month starts for monthly tables)."""
        if self.monthly:
            return start.replace(day=1), end.replace(day=1)
        return start, end

    def reads(self, start: date, end: date) -> tuple[date, date]:
        """The input dates a build of [start, end] reads: the partitions, widened by lookback and lookahead."""
        first, last = self.partitions(start, end)
        if self.monthly:
            last = (last.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return first - timedelta(days=self.lookback), last + timedelta(days=self.lookahead)


@dataclass(frozen=True)
class GoldConf:
    tables: Mapping[str, GoldSpec]
    params: Mapping[str, Any]

    def spec(self, name: str) -> GoldSpec:
        if name not in self.tables:
            raise InputError(f"unknown gold table '{name}'; known tables: {', '.join(self.tables)}")
        return self.tables[name]

    def select(self, names: str) -> list[GoldSpec]:
        """Specs for a comma-separated list of table names (with or without `gold.`), or `all`, in conf order."""
        if names.strip() == "all":
            return list(self.tables.values())
        wanted = [n.strip().removeprefix("gold.") for n in names.split(",") if n.strip()]
        if not wanted:
            raise InputError("give gold table names (comma-separated) or all")
        return [self.spec(n) for n in wanted]


def load_gold(conf_dir: Path) -> GoldConf:
    path = conf_dir / "gold.yaml"
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        tables = {
            name: GoldSpec(
                name=name,
                partition=str(t["partition"]),
                grain=str(t["grain"]),
                inputs=tuple(t["inputs"]),
                about=" ".join(str(t["about"]).split()),
                lookback=int(t.get("lookback", 0)),
                lookahead=int(t.get("lookahead", 0)),
                monthly=bool(t.get("monthly", False)),
            )
            for name, t in raw["tables"].items()
        }
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: malformed gold table spec ({exc})") from None
    params = {k: v for k, v in raw.items() if k != "tables"}
    return GoldConf(MappingProxyType(tables), MappingProxyType(params))


def date_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def describe_dates(days: Sequence[date], shown: int = 5) -> str:
    """The first `shown` dates of a list for an error message, and how many more there are."""
    more = f" and {len(days) - shown} more" if len(days) > shown else ""
    return ", ".join(str(d) for d in days[:shown]) + more
