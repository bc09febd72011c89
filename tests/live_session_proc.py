"""A LiveSession in its own process, for tests/test_session.py (killed with SIGKILL there).

    python live_session_proc.py CHT_SESSION_DIR

Attaches to a cht session being recorded (a replay run by the test) and runs until killed;
prints "started" once the workers run.
"""

from __future__ import annotations

import sys
import threading

from cht_lab.live import LiveSession

if __name__ == "__main__":
    live = LiveSession(sys.argv[1]).start()
    print("started", flush=True)
    threading.Event().wait()  # until killed
