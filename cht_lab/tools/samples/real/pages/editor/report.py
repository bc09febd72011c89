"""The board report: one page per site, written at 06:00 from the archive and the tide model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from archive import bundles, read_bundle
from tides import KESTREL_BAY, ORME_POINT, Site, dive_plan

SITES = {"Kestrel Bay": (KESTREL_BAY, ["KB-1", "KB-2"]), "Orme Point": (ORME_POINT, ["OP-1", "OP-2"])}


@dataclass
class SiteDay:
    site: Site
    energy_kwh: float
    downtime: timedelta
    bad_lines: int
    dives: list[str]


def day_of(root, name: str, day: datetime, reference_hw: datetime) -> SiteDay:
    """Collect one site's day: energy from the archive, downtime from missing seconds, dive windows."""
    site, units = SITES[name]
    energy, seconds, bad = 0.0, 0, 0
    for unit in units:
        for bundle in bundles(root, unit, day, day + timedelta(days=1)):
            for row in read_bundle(bundle):
                if "bad_lines" in row:
                    bad += int(row["bad_lines"])
                    continue
                energy += float(row["kw"]) / 3600.0
                seconds += 1
    expected = 86400 * len(units)
    downtime = timedelta(seconds=max(0, expected - seconds) / len(units))
    return SiteDay(site, energy, downtime, bad, dive_plan(site, day + timedelta(days=1), reference_hw))


def page(d: SiteDay, day: datetime) -> str:
    """The site's page as plain text (the board prints it)."""
    lines = [f"{d.site.name} – {day:%A %d %B %Y}", "=" * 40,
             f"energy delivered   {d.energy_kwh:10.1f} kWh",
             f"downtime           {str(d.downtime):>10}",
             f"malformed lines    {d.bad_lines:10d}", "", "tomorrow's dive windows:"]
    lines += d.dives
    return "\n".join(lines)


def report(root, day: datetime, reference_hw: datetime) -> str:
    """Every site, one page each, separated by form feeds."""
    return "\f".join(page(day_of(root, name, day, reference_hw), day) for name in SITES)


def headline(days: list[SiteDay]) -> str:
    """The line on the cover: energy, the worst downtime, and how many dives are possible tomorrow."""
    energy = sum(d.energy_kwh for d in days)
    worst = max(days, key=lambda d: d.downtime)
    dives = sum(len(d.dives) - 1 for d in days)
    return f"{energy:.0f} kWh · longest downtime {worst.site.name} ({worst.downtime}) · {dives} dive windows"


def email_body(text: str, to: str = "board@harbour.example") -> str:
    """The report as the 06:00 mail: a greeting, the pages, a signature."""
    return "\n".join([f"To: {to}", "Subject: Turbine report", "", "Good morning,", "", text, "",
                      "— Quayside operations (sent automatically)"])


if __name__ == "__main__":
    from pathlib import Path

    print(report(Path("/tmp/quayside-archive"), datetime(2026, 3, 14), datetime(2026, 3, 15, 8, 30)))
