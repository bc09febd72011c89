"""How the panel words numbers: session times, counts with their nouns, optional values.

One place, so the header, the gallery, the tabs and the status line say the same thing the same
way ("1 capture", never "1 captures" or "capture(s)"; 59.96 s is "1:00.0", never "0:60.0").
"""

from __future__ import annotations

import math
from typing import Any


def format_time(ts: float) -> str:
    """Session time as m:ss.s (h:mm:ss.s past an hour) — what people read off a recording.

    Rounded to tenths *before* splitting into minutes and seconds: 59.96 s is 1:00.0, not 0:60.0.
    """
    if ts != ts:  # NaN
        return "?"
    sign = "-" if ts < 0 else ""
    tenths = int(abs(ts) * 10 + 0.5)
    h, rem = divmod(tenths, 36_000)
    m, s = divmod(rem, 600)
    seconds = f"{s // 10:02d}.{s % 10}"
    return f"{sign}{h}:{m:02d}:{seconds}" if h else f"{sign}{m}:{seconds}"


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """'1 capture', '2 captures', '1,204 frames' (thousands separated: the counts get long)."""
    word = noun if n == 1 else (plural_form or noun + "s")
    return f"{n:,} {word}"


def fmt_value(value: Any, spec: str, unit: str = "") -> str:
    """A number with its unit, or an en dash when there is none (None, NaN, inf)."""
    if value is None:
        return "–"
    try:
        if not math.isfinite(float(value)):
            return "–"
    except (TypeError, ValueError):
        return "–"
    return f"{value:{spec}}{unit}"
