"""A long job's progress line: spinner, clock and a counter, rewritten in place ten times a second."""

import itertools
import sys
import time

frames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
for i in itertools.count():
    sys.stdout.write(f"\r{frames[i % len(frames)]} syncing archive  {time.strftime('%H:%M:%S')}  "
                     f"{i // 10:5d} bundles checked ")
    sys.stdout.flush()
    time.sleep(0.1)
