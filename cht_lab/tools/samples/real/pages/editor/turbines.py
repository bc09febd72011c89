"""The turbines on the pontoons: their state, their readings and the checks before a lift."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum


class State(Enum):
    RUNNING = "running"
    DERATED = "derated"
    BRAKED = "braked"
    LIFTED = "lifted"


@dataclass
class Reading:
    when: datetime
    rotor_rpm: float
    power_kw: float
    current_ms: float
    brake: bool


@dataclass
class Turbine:
    unit: str
    site: str
    rated_kw: float = 40.0
    state: State = State.RUNNING
    readings: list[Reading] = field(default_factory=list)

    def add(self, reading: Reading) -> None:
        """Keep a reading; the state follows the brake and the output."""
        self.readings.append(reading)
        if reading.brake:
            self.state = State.BRAKED
        elif reading.power_kw < 0.6 * self.rated_kw * min(1.0, reading.current_ms / 1.5) ** 3:
            self.state = State.DERATED
        else:
            self.state = State.RUNNING

    def energy_kwh(self, since: datetime) -> float:
        """Energy delivered since `since`, from one-second readings."""
        return sum(r.power_kw for r in self.readings if r.when >= since) / 3600.0

    def gaps(self, longer_than: timedelta = timedelta(minutes=5)) -> list[tuple[datetime, datetime]]:
        """Stretches without readings (an alert in the inbox when longer than five minutes)."""
        out = []
        for a, b in zip(self.readings, self.readings[1:]):
            if b.when - a.when > longer_than:
                out.append((a.when, b.when))
        return out


@dataclass
class LiftCheck:
    brake_on: bool = False
    cabinet_locked: bool = False
    tag_hung: bool = False
    cradle_pins: int = 0
    test_lift_held_s: int = 0

    def problems(self) -> list[str]:
        """What still stands between the crew and a lift."""
        out = []
        if not self.brake_on:
            out.append("brake is off")
        if not self.cabinet_locked:
            out.append("cabinet not locked out")
        if not self.tag_hung:
            out.append("no tag on the cabinet")
        if self.cradle_pins < 2:
            out.append(f"cradle pins: {self.cradle_pins} of 2")
        if self.test_lift_held_s < 30:
            out.append(f"test lift held {self.test_lift_held_s} s, needs 30 s")
        return out


def ready_to_lift(turbine: Turbine, check: LiftCheck) -> bool:
    """A lift needs the rotor stopped (braked, zero rpm) and every check done."""
    last = turbine.readings[-1] if turbine.readings else None
    stopped = last is not None and last.brake and last.rotor_rpm == 0.0
    return stopped and turbine.state is State.BRAKED and not check.problems()


def fleet_summary(turbines: list[Turbine], since: datetime) -> list[str]:
    """One line per unit for the dashboard: state and energy since `since`."""
    lines = []
    for t in sorted(turbines, key=lambda t: (t.site, t.unit)):
        lines.append(f"{t.unit:6} {t.site:12} {t.state.value:8} {t.energy_kwh(since):8.1f} kWh")
    return lines


def capacity_factor(turbine: Turbine, since: datetime, until: datetime) -> float:
    """Energy delivered over what the rated power would have given in the same time."""
    hours = (until - since).total_seconds() / 3600.0
    if hours <= 0:
        return 0.0
    return turbine.energy_kwh(since) / (turbine.rated_kw * hours)


def derated_units(turbines: list[Turbine]) -> list[str]:
    """Units that run below their curve: blades fouled or a bearing going."""
    return [t.unit for t in turbines if t.state is State.DERATED]


if __name__ == "__main__":
    t = Turbine("KB-1", "Kestrel Bay")
    start = datetime(2026, 3, 14, 7, 52)
    for s in range(120):
        t.add(Reading(start + timedelta(seconds=s), 41.6, 18.4, 1.34, False))
    print(fleet_summary([t], start))
    print(LiftCheck(brake_on=True).problems())
