"""Generator parameters: conf/base.yaml's `generator` section plus command-line overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

DAY_S = 86_400


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

    @classmethod
    def from_config(cls, generator: Mapping[str, Any], **overrides: Any) -> GeneratorParams:
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
