"""Gold table specs and parameters (conf/gold.yaml), and the date arithmetic of a partitioned build."""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from marketlake.config import load_spec
from marketlake.errors import InputError


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


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}
_FUNCTIONS = {"max": max, "min": min}


def days_from(expression: object, params: Mapping[str, Any]) -> int:
    """A lookback/lookahead in days: a whole number, or arithmetic (+ - * //, max, min) over numbers and parameter
    paths such as `rfm.window_days + exchange.price_lookback_days`, so each window is stated once in conf."""
    if isinstance(expression, int):
        return expression

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
            return _FUNCTIONS[node.func.id](*(value(a) for a in node.args))
        if isinstance(node, (ast.Name, ast.Attribute)):
            path = ast.unparse(node)
            found: Any = params
            for part in path.split("."):
                if not isinstance(found, Mapping) or part not in found:
                    raise ValueError(f"no parameter {path}")
                found = found[part]
            return int(found)
        raise ValueError(f"unsupported expression {ast.unparse(node)!r}")

    try:
        return value(ast.parse(str(expression), mode="eval").body)
    except SyntaxError:
        raise ValueError(f"{expression!r} is not a number or an expression") from None


def load_gold(conf_dir: Path, overlay: Mapping[str, Any] | None = None) -> GoldConf:
    """conf/gold.yaml with an environment's overlay (Settings.overlay("gold")) merged over it."""
    return load_spec(conf_dir / "gold.yaml", overlay, "gold table spec", _gold)


def _gold(raw: Mapping[str, Any]) -> GoldConf:
    params = {k: v for k, v in raw.items() if k != "tables"}
    tables = {
        name: GoldSpec(
            name=name,
            partition=str(t["partition"]),
            grain=str(t["grain"]),
            inputs=tuple(t["inputs"]),
            about=" ".join(str(t["about"]).split()),
            lookback=days_from(t.get("lookback", 0), params),
            lookahead=days_from(t.get("lookahead", 0), params),
            monthly=bool(t.get("monthly", False)),
        )
        for name, t in raw["tables"].items()
    }
    return GoldConf(MappingProxyType(tables), MappingProxyType(params))


def date_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def describe_dates(days: Sequence[date], shown: int = 5) -> str:
    """The first `shown` dates of a list for an error message, and how many more there are."""
    more = f" and {len(days) - shown} more" if len(days) > shown else ""
    return ", ".join(str(d) for d in days[:shown]) + more
