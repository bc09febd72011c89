"""`cht-lab demo`: a bundled sample replayed as a live cht session, watched by a LiveSession.

This is the whole product in under a minute: replay serves the sample's H.264 on `scene.sock`
and writes the growing recording; LiveSession detects scenes, captures JPEGs and cuts audio into
the same session directory; the summary compares the captures with the sample's labels.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CONNECT_WAIT = 30.0  # s the replay holds its stream for the LiveSession to connect


@dataclass
class DemoResult:
    session_dir: Path
    plot_path: Path
    summary: dict[str, Any] = field(default_factory=dict)


def run_demo(sample: str = "slides", speed: float = 2.0, out_dir: str | os.PathLike[str] | None = None,
             backend: str = "auto", timeout: float = 300.0, progress: bool = False) -> DemoResult:
    """Replay `sample` at `speed`× real time through a LiveSession; summarise and plot the result.

    `progress`: a tqdm bar over the sample's media seconds (for a terminal).

    The LiveSession joins the replay's socket at a keyframe, so the replay holds its stream until
    the LiveSession has connected, and the progress bar probes the recording before either starts:
    no frame of the sample is lost however slowly things start.
    """
    from cht_lab.live import LiveSession
    from cht_lab.panel.plotting import save_score_plot
    from cht_lab.tools.replay_server import replay
    from cht_lab.tools.samples import sample_dir
    from cht_lab.session import open_session
    from cht_lab.tuning.sweep import match

    source = sample_dir(sample)
    labels = open_session(source).labels
    out = Path(out_dir) if out_dir else Path.cwd() / "sessions"
    latencies: list[float] = []
    captured = threading.Event()
    bar = _bar(source, sample) if progress else None
    t0 = time.monotonic()
    with replay(source, out_dir=out, speed=speed, wait_for_client=CONNECT_WAIT) as server:
        live = LiveSession(server.session_dir, backend=backend)

        @live.on_new_frames
        def _note(rows: list[dict[str, Any]]) -> None:
            captured.set()

        with live:
            while not server.done.wait(0.25):
                lag = live.status.get("lag")
                if lag is not None:
                    latencies.append(float(lag))
                if bar is not None:
                    bar.update(min(bar.total, server.status["elapsed"] * server.speed) - bar.n)
                if time.monotonic() - t0 > timeout:
                    raise TimeoutError(f"demo did not finish within {timeout:.0f} s")
            if bar is not None:
                bar.close()
            # the server is gone: the detector drains what it sent last, the audio the recording's tail
            if not live.wait(timeout=30):
                log.warning("the live session had not finished 30 s after the replay ended")
        status = live.status
        frames, scores, audio = live.frames(), live.scores(), live.audio()
    session_dir = Path(server.session_dir)
    result = match(frames["ts"].to_numpy(), labels, tolerance=0.5) if labels is not None else None
    plot_path = session_dir / "scores.png"
    save_score_plot(str(plot_path), scores, live.metric, live.threshold,
                    detections=frames.assign(**{live.metric: frames["score"]}) if not frames.empty else None,
                    labels=labels, title=f"{sample} replayed live at {speed:g}x")
    summary = {
        "sample": sample,
        "backend": status.get("backend"),
        "backend_reason": status.get("backend_reason"),
        "metric": live.metric,
        "threshold": live.threshold,
        "frames captured": len(frames),
        "labeled events": 0 if labels is None else len(labels),
        "precision": None if result is None else round(result.precision, 3),
        "recall": None if result is None else round(result.recall, 3),
        "f1": None if result is None else round(result.f1, 3),
        "score rows": len(scores),
        "audio chunks": len(audio),
        "audio seconds": round(float(audio["duration"].sum()), 2) if not audio.empty else 0.0,
        "p95 lag (s)": round(float(np.percentile(latencies, 95)), 3) if latencies else None,
        "errors": len(status.get("errors", [])),
        "wall time (s)": round(time.monotonic() - t0, 1),
    }
    return DemoResult(session_dir, plot_path, summary)


def _bar(source: Path, sample: str) -> Any:
    from tqdm.auto import tqdm

    from cht_lab.layout import discover_segments
    from cht_lab.ffmpeg import probe

    segments = discover_segments(source)
    total = segments[-1].offset + probe(segments[-1].path).duration if segments else 0.0
    return tqdm(total=round(total, 1), desc=f"replaying {sample}", unit="s", leave=False,
                bar_format="{desc}: {n:.0f}/{total:.0f} s |{bar}| {elapsed}")
