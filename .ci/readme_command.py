"""Print line N (1-based) of the first code block under README's '## Quick start' heading."""

import re
import sys
from pathlib import Path

n = int(sys.argv[1])
text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
section = re.split(r"^## +Quick start\s*$", text, maxsplit=1, flags=re.M | re.I)[1]
block = re.search(r"^```[^\n]*\n(.*?)^```", section, flags=re.M | re.S).group(1)
lines = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
print(lines[n - 1])
