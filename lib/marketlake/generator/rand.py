"""Deterministic pseudo-random Spark columns: pure functions of (seed, stream, keys), never of partitioning."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

_TWO53 = 1 << 53


class Rng:
    """A seeded source of per-row random columns; each call names its stream so draws are independent."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def uniform(self, stream: str, *keys: Column | str) -> Column:
        """U[0, 1) from a 64-bit hash of (seed, stream, keys)."""
        h = F.xxhash64(F.lit(self.seed), F.lit(stream), *keys)
        return F.pmod(h, F.lit(_TWO53)).cast("double") / float(_TWO53)

    def randint(self, stream: str, low: int | Column, high: int | Column, *keys: Column | str) -> Column:
        """Integer in [low, high] inclusive."""
        low_c = low if isinstance(low, Column) else F.lit(low)
        high_c = high if isinstance(high, Column) else F.lit(high)
        return F.floor(low_c + self.uniform(stream, *keys) * (high_c - low_c + 1)).cast("long")

    def normal(self, stream: str, *keys: Column | str) -> Column:
        """Standard normal by Box-Muller."""
        u1 = self.uniform(stream + ":n1", *keys)
        u2 = self.uniform(stream + ":n2", *keys)
        return F.sqrt(-2.0 * F.log(u1 + 1e-12)) * F.cos(2.0 * math.pi * u2)

    def lognormal(self, stream: str, median: float, sigma: float, *keys: Column | str) -> Column:
        return F.lit(median) * F.exp(F.lit(sigma) * self.normal(stream, *keys))

    def exponential(self, stream: str, mean: float | Column, *keys: Column | str) -> Column:
        mean_c = mean if isinstance(mean, Column) else F.lit(mean)
        return -F.log(1.0 - self.uniform(stream, *keys)) * mean_c

    def choice(self, stream: str, options: Sequence[tuple[Any, float]], *keys: Column | str) -> Column:
        """One of the options' values, drawn with the given (unnormalised) weights."""
        return pick(self.uniform(stream, *keys), options)

    def bernoulli(self, stream: str, p: float | Column, *keys: Column | str) -> Column:
        p_c = p if isinstance(p, Column) else F.lit(p)
        return self.uniform(stream, *keys) < p_c


def pick(u: Column, options: Sequence[tuple[Any, float]]) -> Column:
    """Map a uniform column to one of the weighted options (cumulative thresholds)."""
    total = float(sum(w for _, w in options))
    expr: Column | None = None
    cumulative = 0.0
    for value, weight in options[:-1]:
        cumulative += weight / total
        expr = F.when(u < cumulative, F.lit(value)) if expr is None else expr.when(u < cumulative, F.lit(value))
    last = F.lit(options[-1][0])
    return last if expr is None else expr.otherwise(last)


def lookup(mapping: dict[Any, Any], key: Column) -> Column:
    """Look a column's value up in a small literal mapping."""
    pairs: list[Column] = []
    for k, v in mapping.items():
        pairs.extend((F.lit(k), F.lit(v)))
    return F.create_map(*pairs)[key]


def element(values: Sequence[Any], index: Column) -> Column:
    """values[index] for a 0-based index column."""
    return F.element_at(F.array(*[F.lit(v) for v in values]), (index % len(values)).cast("int") + 1)
