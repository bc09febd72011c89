"""The archive: hourly bundles of logger lines, kept forever, read by the board report at 06:00."""

from __future__ import annotations

import gzip
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

LINE = re.compile(r"^(?P<when>\S+Z) (?P<unit>\S+) rotor_rpm=(?P<rpm>[\d.]+) power_kw=(?P<kw>[\d.]+) "
                  r"current_ms=(?P<ms>[\d.]+) brake=(?P<brake>[01])$")


@dataclass(frozen=True)
class Bundle:
    unit: str
    hour: datetime
    path: Path

    @property
    def name(self) -> str:
        return f"{self.unit}_{self.hour:%Y%m%d_%H}.log.gz"


def bundle_path(root: Path, unit: str, hour: datetime) -> Path:
    """Where an hour of `unit` lives: one folder per unit and month."""
    return root / unit / f"{hour:%Y-%m}" / f"{unit}_{hour:%Y%m%d_%H}.log.gz"


def write_bundle(root: Path, unit: str, hour: datetime, lines: list[str]) -> Bundle:
    """Compress an hour of lines into the archive (a temporary name first, then renamed)."""
    path = bundle_path(root, unit, hour)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for line in lines:
            f.write(line.rstrip("\n") + "\n")
    tmp.replace(path)
    return Bundle(unit, hour, path)


def read_bundle(bundle: Bundle) -> list[dict[str, object]]:
    """Parse a bundle back into readings; malformed lines are skipped and counted."""
    rows: list[dict[str, object]] = []
    bad = 0
    with gzip.open(bundle.path, "rt", encoding="utf-8") as f:
        for line in io.TextIOWrapper(f.buffer, encoding="utf-8") if hasattr(f, "buffer") else f:
            m = LINE.match(line.strip())
            if not m:
                bad += 1
                continue
            rows.append({"when": datetime.fromisoformat(m["when"].replace("Z", "+00:00")), "unit": m["unit"],
                         "rpm": float(m["rpm"]), "kw": float(m["kw"]), "ms": float(m["ms"]),
                         "brake": m["brake"] == "1"})
    if bad:
        rows.append({"bad_lines": bad})
    return rows


def bundles(root: Path, unit: str, since: datetime, until: datetime) -> list[Bundle]:
    """Every bundle of `unit` from `since` to `until`, hour by hour, those that exist."""
    out = []
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour < until:
        path = bundle_path(root, unit, hour)
        if path.exists():
            out.append(Bundle(unit, hour, path))
        hour += timedelta(hours=1)
    return out


def missing_hours(root: Path, unit: str, since: datetime, until: datetime) -> list[datetime]:
    """Hours without a bundle: the shore box was down or the cabinet locked out."""
    have = {b.hour for b in bundles(root, unit, since, until)}
    hour = since.replace(minute=0, second=0, microsecond=0)
    out = []
    while hour < until:
        if hour not in have:
            out.append(hour)
        hour += timedelta(hours=1)
    return out


def prune_tmp(root: Path) -> int:
    """Remove temporary files a crashed writer left behind; returns how many."""
    n = 0
    for tmp in root.rglob("*.tmp"):
        tmp.unlink()
        n += 1
    return n


if __name__ == "__main__":
    root = Path("/tmp/quayside-archive")
    hour = datetime(2026, 3, 14, 7)
    b = write_bundle(root, "KB-1", hour, ["2026-03-14T07:52:00Z KB-1 rotor_rpm=0.0 power_kw=0.00 current_ms=0.21 brake=1"])
    print(b.name, read_bundle(b))
    print(missing_hours(root, "KB-1", hour, hour + timedelta(hours=3)))
