"""Generator parameters: conf/base.yaml's `generator` section plus command-line overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from marketlake.experiments.assign import Design
from marketlake.experiments.spec import ExperimentSpec

DAY_S = 86_400


@dataclass(frozen=True)
class PlantedEffect:
    """The true effect of the regret-intervention experiment: a purchase of a customer in a treated arm of `design`
    who consented to marketing (so may get the intervention) is returned for regret with probability
    x (1 - relative_effect). The generator cannot know which purchases the model will pick, so every such purchase
    carries the effect; the readout measures it on the purchases the experiment exposed."""

    design: Design
    treated: tuple[str, ...]
    relative_effect: float


@dataclass(frozen=True)
class GeneratorParams:
    seed: int
    scale: float
    start: date
    days: int
    volumes: Mapping[str, float]
    dirty: Mapping[str, float]
    drift_at: float
    shocks: Mapping[str, Mapping[str, float]]
    max_lines_per_file: int
    effect: PlantedEffect | None = None

    @classmethod
    def from_config(
        cls, generator: Mapping[str, Any], experiments: Mapping[str, ExperimentSpec] | None = None, **overrides: Any
    ) -> GeneratorParams:
        """The parameters from conf's `generator` section and command-line overrides; `experiments`
        (conf/experiments.yaml) lets the section's experiment_effect plant its effect in its experiment."""
        values = {k: v for k, v in overrides.items() if v is not None}
        start = values.get("start", generator["start"])
        return cls(
            seed=int(values.get("seed", generator["seed"])),
            scale=float(values.get("scale", generator["scale"])),
            start=start if isinstance(start, date) else date.fromisoformat(str(start)),
            days=int(values.get("days", generator["days"])),
            volumes=dict(generator["volumes"]),
            dirty=dict(values.get("dirty", generator["dirty"])),
            drift_at=float(generator.get("drift_at", 0.5)),
            shocks={k: dict(v) for k, v in (generator.get("shocks") or {}).items()},
            max_lines_per_file=int(generator.get("max_lines_per_file", 500_000)),
            effect=_effect(generator.get("experiment_effect"), experiments or {}, values.get("effect")),
        )

    @property
    def start_s(self) -> int:
        return int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp())

    @property
    def end_s(self) -> int:
        """Exclusive end of the generated period (midnight after the last day)."""
        return self.start_s + self.days * DAY_S

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    @property
    def drift_date(self) -> date:
        """From this landing date on, drifting sources carry their new column."""
        return self.start + timedelta(days=int(self.days * self.drift_at))

    def count(self, name: str) -> int:
        """A volume from config scaled by --scale (at least 1)."""
        return max(1, round(float(self.volumes[name]) * self.scale))

    def shock_day(self, name: str) -> int | None:
        """The day offset of a configured shock, or None when it falls outside the period."""
        shock = self.shocks.get(name)
        if not shock:
            return None
        day = int(shock["day"])
        return day if 0 <= day < self.days else None


def _effect(
    raw: Mapping[str, Any] | None, experiments: Mapping[str, ExperimentSpec], relative: float | None
) -> PlantedEffect | None:
    """The planted effect, with `relative` (a command-line override) in place of the configured relative_effect;
    none without an effect, a zero one, or the experiment's design."""
    if not raw:
        return None
    size = float(raw["relative_effect"] if relative is None else relative)
    if not 0 <= size <= 1:
        raise ValueError(f"the experiment's relative effect must be in [0, 1], got {size}")
    found = experiments.get(str(raw["experiment"]))
    if found is None or size == 0:
        return None
    return PlantedEffect(found.design, found.treated, size)
