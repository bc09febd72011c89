"""Tide windows for the pontoon turbines: when the current is slack enough to dive or lift."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

SLACK_LIMIT = 0.3  # m/s: below this a diver can work at the hatch
M2_PERIOD = timedelta(hours=12, minutes=25, seconds=14)  # principal lunar semi-diurnal


@dataclass(frozen=True)
class Site:
    name: str
    peak_current: float  # m/s at mean springs
    phase: timedelta  # high water after the reference port
    river_factor: float = 0.0  # extra current per mm of rain in the last 48 h


KESTREL_BAY = Site("Kestrel Bay", 1.9, timedelta(minutes=-18))
ORME_POINT = Site("Orme Point", 1.4, timedelta(minutes=34), river_factor=0.004)


def current(site: Site, when: datetime, reference_hw: datetime, springs: float = 1.0,
            rain_mm: float = 0.0) -> float:
    """Speed of the tidal stream at `site` (m/s), a sine over the M2 period plus river run-off."""
    t = (when - reference_hw - site.phase) / M2_PERIOD
    tidal = abs(math.sin(2 * math.pi * t)) * site.peak_current * springs
    return tidal + site.river_factor * rain_mm


def slack_windows(site: Site, day: datetime, reference_hw: datetime, springs: float = 1.0,
                  rain_mm: float = 0.0, step: timedelta = timedelta(minutes=1)) -> list[tuple[datetime, datetime]]:
    """Every stretch of `day` with the stream below SLACK_LIMIT, as (start, end) pairs."""
    windows: list[tuple[datetime, datetime]] = []
    start = None
    t = day.replace(hour=0, minute=0, second=0, microsecond=0)
    end_of_day = t + timedelta(days=1)
    while t < end_of_day:
        slack = current(site, t, reference_hw, springs, rain_mm) < SLACK_LIMIT
        if slack and start is None:
            start = t
        elif not slack and start is not None:
            windows.append((start, t))
            start = None
        t += step
    if start is not None:
        windows.append((start, end_of_day))
    return windows


def longest_window(windows: list[tuple[datetime, datetime]]) -> timedelta:
    """The longest slack window of a day (zero when there is none)."""
    return max((b - a for a, b in windows), default=timedelta(0))


def dive_plan(site: Site, day: datetime, reference_hw: datetime, springs: float = 1.0,
              rain_mm: float = 0.0, minimum: timedelta = timedelta(minutes=10)) -> list[str]:
    """Lines for the dive sheet: each usable window, or why there is none."""
    windows = [w for w in slack_windows(site, day, reference_hw, springs, rain_mm) if w[1] - w[0] >= minimum]
    if not windows:
        return [f"{site.name}: no window of {minimum} on {day:%a %d %b}"]
    lines = [f"{site.name}, {day:%a %d %b}:"]
    for a, b in windows:
        lines.append(f"  {a:%H:%M}-{b:%H:%M}  ({(b - a).seconds // 60} min)")
    return lines


def springs_factor(day: datetime, new_moon: datetime) -> float:
    """1.0 at springs, about 0.55 at neaps: the moon's age over a 14.77-day cycle."""
    age = ((day - new_moon).total_seconds() / 86400.0) % 14.765
    return 0.775 + 0.225 * math.cos(2 * math.pi * age / 14.765)


def week_plan(site: Site, monday: datetime, reference_hw: datetime, new_moon: datetime,
              rain_mm: float = 0.0) -> list[str]:
    """Seven days of dive windows, springs and neaps taken into account."""
    lines: list[str] = []
    for i in range(7):
        day = monday + timedelta(days=i)
        hw = reference_hw + i * timedelta(minutes=50)
        lines += dive_plan(site, day, hw, springs_factor(day, new_moon), rain_mm)
    return lines


if __name__ == "__main__":
    monday = datetime(2026, 3, 16)
    hw = datetime(2026, 3, 16, 7, 40)
    moon = datetime(2026, 3, 19)
    for line in week_plan(KESTREL_BAY, monday, hw, moon) + week_plan(ORME_POINT, monday, hw, moon, rain_mm=12):
        print(line)
