"""How many decisions a label review needs: "ask what matters" against time order, on the labeled samples.

    python benchmarks/labeling.py [--samples slides desktop ...] [--metric M] [--floor F] [--target 0.95]
                                  [--metrics] [--json out.json]

A simulated user (cht_lab.tuning.simulate) answers every question of a review from each sample's
true labels.csv: the candidate's label kind, or "none". After every decision the review's best
threshold is scored against the *full* labels with the real capture rule and matching. Per sample
and order it reports the decisions until that threshold first reaches F1 >= target ("reach"),
until it stays there ("hold"), and until the review says the labels settle the threshold
("settled", with the F1 there) — the point where a user is told to stop. The target is 0.95, or
what the complete labels get out of the metric where that is less (`find_best` F1, "full").

Goal: <= 10 decisions per sample in "ask what matters" order, and fewer than in time order on
every sample. `--metrics` repeats the run for every metric column (robustness: the order is not
tuned to one metric). Samples are scored into a temporary $CHT_LAB_DATA (data/samples is only
read); only samples already on disk are used (none is generated).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

GOAL = 10


def _present(names: list[str] | None) -> list[str]:
    from cht_lab.tools.samples import SAMPLES, sample_dir

    chosen = names or list(SAMPLES)
    return [n for n in chosen if (sample_dir(n, generate_missing=False) / "labels.csv").is_file()]


def run_sample(session, metric: str | None, floor: float | None, target: float) -> dict:
    from cht_lab.tuning.simulate import decisions_needed, simulate
    from cht_lab.tuning.sweep import TuningError, find_best

    try:
        full = find_best(session.scores(), session.labels, metric=metric or session.resolve()[1]).f1
    except TuningError:  # the metric finds none of the events
        full = 0.0
    out = {"full": full}
    for order in ("matters", "time"):
        steps = simulate(session.scores(), session.labels, order, metric=metric, floor=floor)
        out[order] = decisions_needed(steps, min(target, full) - 1e-9) if full > 0 else decisions_needed(steps[:0])
        out["candidates"], out["missed"], out["metric"] = (steps.attrs["candidates"], steps.attrs["missed"],
                                                           steps.attrs["metric"])
    return out


def _fmt(v) -> str:
    return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def report(results: dict[str, dict], target: float) -> dict:
    """Print the table; returns the totals and whether the goal was met."""
    print(f"| sample | metric | candidates | full | reach min({target}, full) (matters / time) | hold | settled | "
          "F1 at settled |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        m, t = r["matters"], r["time"]
        print(f"| {name} | {r['metric']} | {r['candidates']} | {r['full']:.3f} | {_fmt(m['reach'])} / {_fmt(t['reach'])} | "
              f"{_fmt(m['hold'])} / {_fmt(t['hold'])} | {_fmt(m['settled'])} / {_fmt(t['settled'])} | "
              f"{_fmt(m['f1_settled'])} / {_fmt(t['f1_settled'])} |")
    totals = {}
    for key in ("reach", "hold", "settled"):
        pairs = [(r["matters"][key], r["time"][key]) for r in results.values()]
        ok = [(a, b) for a, b in pairs if a is not None and b is not None]
        fewer, ties, more = (sum(1 for a, b in ok if cmp(a, b)) for cmp in (int.__lt__, int.__eq__, int.__gt__))
        totals[key] = {"matters": sum(a for a, _ in ok), "time": sum(b for _, b in ok),
                       "ratio": (sum(a for a, _ in ok) / sum(b for _, b in ok)) if ok else None,
                       "fewer": fewer, "tied": ties, "more": more, "unreached": len(pairs) - len(ok),
                       "tied_at_one": sum(1 for a, b in ok if a == b == 1),
                       "max_matters": max((a for a, _ in ok), default=None)}
        t = totals[key]
        print(f"{key}: {t['matters']} decisions asking what matters vs {t['time']} in time order (ratio "
              f"{_fmt(t['ratio'])}); fewer on {fewer}, tied on {ties} ({t['tied_at_one']} of them at 1 decision, "
              f"the least there is), more on {more}, target never reached on {t['unreached']}; "
              f"most on one sample: {t['max_matters']}")
    reachable = [r for r in results.values() if r["matters"]["reach"] is not None or r["time"]["reach"] is not None]
    goal = (all(r["matters"]["reach"] is not None and r["matters"]["reach"] <= GOAL for r in reachable)
            and totals["settled"]["more"] == 0 and totals["settled"]["tied"] == totals["settled"]["tied_at_one"])
    print(f"goal (<= {GOAL} decisions to the target wherever the metric finds events; settled in fewer decisions "
          f"than time order, ties only at 1): {'met' if goal else 'MISSED'}")
    return {"totals": totals, "goal_met": goal}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", nargs="*", help="sample names (default: every labeled sample on disk)")
    ap.add_argument("--metric", help="metric to review (default: the engine's default)")
    ap.add_argument("--floor", type=float, help="candidates' floor (default: a quarter of the metric's default)")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--metrics", action="store_true", help="repeat for every metric column")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    os.environ.setdefault("CHT_LAB_DATA", tempfile.mkdtemp(prefix="cht_lab-labeling-"))
    import cht_lab
    from cht_lab.tuning.matching import metric_columns

    names = _present(args.samples)
    t0 = time.monotonic()
    sessions = {}
    for name in names:
        s = cht_lab.open_session(cht_lab.sample_dir(name, generate_missing=False))
        s.score(progress=False)
        sessions[name] = s
    print(f"scored {len(names)} samples in {time.monotonic() - t0:.1f} s (data dir {os.environ['CHT_LAB_DATA']})\n")
    metrics = [args.metric]
    if args.metrics:
        metrics = [m for m in metric_columns(next(iter(sessions.values())).scores())]
    everything = {}
    for metric in metrics:
        results = {name: run_sample(s, metric, args.floor, args.target) for name, s in sessions.items()}
        print(f"\nmetric {metric or 'default'}:")
        everything[metric or "default"] = {"samples": results, **report(results, args.target)}
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2, default=str))
    return 0 if everything[metrics[0] or "default"]["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
