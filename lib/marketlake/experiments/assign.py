"""Deterministic assignment of units to an experiment's variants (DOMAIN.md, Experiments).

A unit's bucket is the first 13 hex digits of SHA-256("<experiment>/<unit id>") read as a fraction of 16^13, a
number in [0, 1) that is the same in every run, on every engine, and independent between experiments. Buckets
below the holdout share are held out (no variant, not in the readout's arms); the rest are spread over the
variants by their weights, in the order given. 13 digits (52 bits) make the fraction exact in a double, so
Spark's column and Python's function put every unit in the same arm.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

HEX_DIGITS = 13
SCALE = float(16**HEX_DIGITS)
HOLDOUT = "holdout"


@dataclass(frozen=True)
class Design:
    """An experiment's name, its variants (name, weight) with control first, and the held-out share of units."""

    name: str
    variants: tuple[tuple[str, float], ...]
    holdout: float = 0.0

    def __post_init__(self) -> None:
        names = [v for v, _ in self.variants]
        if len(names) < 2 or len(set(names)) != len(names) or HOLDOUT in names:
            raise ValueError(f"experiment {self.name}: needs two or more distinct variants, none named '{HOLDOUT}'")
        if any(w <= 0 for _, w in self.variants):
            raise ValueError(f"experiment {self.name}: variant weights must be positive")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"experiment {self.name}: holdout must be in [0, 1), got {self.holdout}")

    @property
    def control(self) -> str:
        return self.variants[0][0]

    def edges(self) -> list[tuple[str, float]]:
        """Each variant with the bucket its range ends at (the last ends at 1)."""
        total = sum(w for _, w in self.variants)
        out, upto = [], self.holdout
        for i, (name, weight) in enumerate(self.variants):
            upto = 1.0 if i == len(self.variants) - 1 else upto + (1 - self.holdout) * weight / total
            out.append((name, upto))
        return out


def bucket(experiment: str, unit: str) -> float:
    digest = hashlib.sha256(f"{experiment}/{unit}".encode()).hexdigest()
    return int(digest[:HEX_DIGITS], 16) / SCALE


def assign(design: Design, unit: str) -> str:
    """The arm of one unit: a variant's name, or 'holdout'."""
    b = bucket(design.name, unit)
    if b < design.holdout:
        return HOLDOUT
    return next(name for name, end in design.edges() if b < end)


def bucket_column(experiment: str, unit: Column) -> Column:
    digest = F.sha2(F.concat(F.lit(f"{experiment}/"), unit.cast("string")), 256)
    return F.conv(F.substring(digest, 1, HEX_DIGITS), 16, 10).cast("long").cast("double") / F.lit(SCALE)


def assign_column(design: Design, unit: Column) -> Column:
    """The arm of each row's unit, as `assign` gives it."""
    b = bucket_column(design.name, unit)
    arm = F.when(b < F.lit(design.holdout), F.lit(HOLDOUT))
    for name, end in design.edges():
        arm = arm.when(b < F.lit(end), F.lit(name))
    return arm
