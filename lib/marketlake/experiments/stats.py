"""The statistics of an experiment readout, from each arm's counts or moments (DOMAIN.md, Experiments).

- Conversion metrics: the two-proportion z-test with the pooled standard error (its square is the chi-square
  statistic of the 2x2 table, without continuity correction), and a Wald interval for the absolute lift.
- Revenue metrics: Welch's t-test (unequal variances, Welch-Satterthwaite degrees of freedom) and its interval.
- The relative lift (variant / control - 1) gets a delta-method interval, and none when the control's rate or mean
  is zero.
- Power: the units each arm needs to detect an absolute lift `mde` over a baseline rate with a two-sided test at
  alpha and the given power (normal approximation, the pooled variance under the null).

Every function takes plain numbers (a readout aggregates its arms in Spark first, then has a few rows to score).
scipy supplies the normal and t distributions only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm
from scipy.stats import t as student_t


@dataclass(frozen=True)
class Lift:
    """The variant against control: its value (rate or mean) and the control's, the lift absolute and relative
    with their (1 - alpha) intervals, the test statistic (z or t) and its two-sided p-value."""

    control: float
    variant: float
    absolute: float
    absolute_low: float
    absolute_high: float
    relative: float | None
    relative_low: float | None
    relative_high: float | None
    statistic: float
    p_value: float


def _relative(control: float, variant: float, se_control: float, se_variant: float, z: float) -> tuple[float, ...]:
    """variant / control - 1 with its delta-method interval: Var(V/C) ~ se_V^2 / C^2 + V^2 se_C^2 / C^4."""
    ratio = variant / control
    se = math.sqrt(se_variant**2 / control**2 + variant**2 * se_control**2 / control**4)
    return ratio - 1, ratio - 1 - z * se, ratio - 1 + z * se


def _check_units(*units: int) -> None:
    if any(n < 1 for n in units):
        raise ValueError(f"each arm needs at least one unit, got {units}")


def proportions(
    control_units: int, control_conversions: int, variant_units: int, variant_conversions: int, alpha: float = 0.05
) -> Lift:
    """The variant's conversion rate against control's: two-proportion z-test (pooled), Wald interval."""
    _check_units(control_units, variant_units)
    for units, conversions in ((control_units, control_conversions), (variant_units, variant_conversions)):
        if not 0 <= conversions <= units:
            raise ValueError(f"{conversions} conversions out of {units} units")
    p_c, p_v = control_conversions / control_units, variant_conversions / variant_units
    diff = p_v - p_c
    z_crit = float(norm.ppf(1 - alpha / 2))
    se_c, se_v = math.sqrt(p_c * (1 - p_c) / control_units), math.sqrt(p_v * (1 - p_v) / variant_units)
    se = math.hypot(se_c, se_v)
    pooled = (control_conversions + variant_conversions) / (control_units + variant_units)
    se_null = math.sqrt(pooled * (1 - pooled) * (1 / control_units + 1 / variant_units))
    z = diff / se_null if se_null > 0 else 0.0  # nobody or everybody converted in both arms: no evidence of a lift
    relative = _relative(p_c, p_v, se_c, se_v, z_crit) if p_c > 0 else (None, None, None)
    return Lift(p_c, p_v, diff, diff - z_crit * se, diff + z_crit * se, *relative, z, float(2 * norm.sf(abs(z))))


def means(
    control_units: int,
    control_mean: float,
    control_variance: float,
    variant_units: int,
    variant_mean: float,
    variant_variance: float,
    alpha: float = 0.05,
) -> Lift:
    """The variant's mean (e.g. revenue per unit) against control's: Welch's t-test and interval, from each arm's
    units, mean and sample variance (ddof 1)."""
    _check_units(control_units, variant_units)
    if control_units < 2 or variant_units < 2:
        raise ValueError("Welch's test needs at least two units per arm")
    v_c, v_v = control_variance / control_units, variant_variance / variant_units
    se = math.sqrt(v_c + v_v)
    diff = variant_mean - control_mean
    if se == 0:
        t, df = 0.0, float(control_units + variant_units - 2)
    else:
        t = diff / se
        df = (v_c + v_v) ** 2 / (v_c**2 / (control_units - 1) + v_v**2 / (variant_units - 1))
    t_crit = float(student_t.ppf(1 - alpha / 2, df))
    relative = (
        _relative(control_mean, variant_mean, math.sqrt(v_c), math.sqrt(v_v), t_crit)
        if control_mean != 0
        else (None, None, None)
    )
    p_value = float(2 * student_t.sf(abs(t), df)) if se > 0 else 1.0
    return Lift(control_mean, variant_mean, diff, diff - t_crit * se, diff + t_crit * se, *relative, t, p_value)


def sample_size_per_arm(baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm for a two-sided two-proportion test to detect baseline -> baseline + mde (absolute) with the
    given power: n = (z_a sqrt(2 pbar qbar) + z_b sqrt(p1 q1 + p2 q2))^2 / mde^2."""
    p1, p2 = baseline, baseline + mde
    if not (0 < p1 < 1 and 0 < p2 < 1) or mde == 0:
        raise ValueError(f"baseline {baseline} and baseline + mde {p2} must lie strictly between 0 and 1, mde not 0")
    z_a, z_b = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    pbar = (p1 + p2) / 2
    root = z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root**2 / mde**2)
