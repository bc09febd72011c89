"""Labeling a recording from scratch in a real JupyterLab and Chromium: the Label tab end to end.

A copy of the slides sample without its labels.csv is the user's own recording. The test answers
each question the tab asks from the sample's original labels (mark, reject, a key shortcut, undo,
a missed event added by time), kills the kernel in the middle (labels.csv must be whole and hold
every decision), runs the notebook again (the review resumes), reloads the page (the labels are
still shown), and finally checks that the best threshold the Tuning tab offers reaches F1 1.0
against the original labels. Skipped, with the reason, without Playwright, JupyterLab or
/usr/bin/chromium (as tests/test_browser.py). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from test_browser import (  # noqa: I001  (the helpers of the notebook's browser test)
    ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, HEIGHT, UNRELATED_CONSOLE, _requirements, jupyterlab,
)

pytestmark = pytest.mark.browser

NOTEBOOK = "label_my_recording.ipynb"
CELL = """import cht_lab
session = cht_lab.open_session(r"{session}")
session.score(progress=False)
session.metric = "settled"  # the metric the sample's labels were measured on
panel = session.panel(max_thumbs=4)
panel.show_tab("label")
panel"""


@pytest.fixture(scope="module")
def label_lab(tmp_path_factory: pytest.TempPathFactory):
    """JupyterLab on a free port, a scored copy of the slides sample without labels, a one-cell notebook."""
    _requirements()
    from cht_lab.session import open_session
    from cht_lab.tools.samples import sample_dir

    work = tmp_path_factory.mktemp("label_lab")
    bundled = sample_dir("slides")
    session_dir = work / "recordings" / bundled.name
    shutil.copytree(bundled, session_dir, ignore=shutil.ignore_patterns("labels.csv", "index", ".cache"))
    open_session(session_dir).score(progress=False)  # scored here: the notebook only opens it
    root = work / "root"
    root.mkdir()
    cell = {"cell_type": "code", "execution_count": None, "id": "label", "metadata": {}, "outputs": [],
            "source": CELL.format(session=session_dir)}
    notebook = {"cells": [cell], "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                             "name": "python3"}},
                "nbformat": 4, "nbformat_minor": 5}
    (root / NOTEBOOK).write_text(json.dumps(notebook))
    with jupyterlab(work, root) as server:
        yield {**server, "session": session_dir, "truth": bundled / "labels.csv"}


KERNEL_IDLE = ("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
               " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
               " return k && k.status === 'idle'; }")


def _run_all(page) -> None:
    """Run the notebook and return once it has run (the command's promise), its panel on the page."""
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.locator(".cht-tab-label .cht-label-progress").wait_for(state="visible", timeout=120_000)


def _dismiss_dialogs(page) -> None:
    """JupyterLab's "the kernel appears to have died" box would cover the panel."""
    for _ in range(50):
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            page.keyboard.press("Escape")
            return
        page.wait_for_timeout(100)  # the dialog comes when the server reports the dead kernel


def _reviewed(page) -> int:
    text = page.locator(".cht-label-progress").inner_text()
    return int(re.match(r"(\d+) of \d+ reviewed", text).group(1))


def _wait_reviewed(page, n: int) -> None:
    page.wait_for_function("(n) => { const p = document.querySelector('.cht-label-progress');"
                           " return p && p.textContent.startsWith(n + ' of '); }", arg=n, timeout=30_000)


def _candidate_time(page) -> float:
    return float(re.search(r"\(([\d.]+) s\)", page.locator(".cht-label-caption").inner_text()).group(1))


def _kernel_pid(server: subprocess.Popen) -> int:
    import psutil

    kernels = [p for p in psutil.Process(server.pid).children(recursive=True)
               if "ipykernel" in " ".join(p.cmdline())]
    assert len(kernels) == 1, kernels
    return kernels[0].pid


@pytest.mark.timeout(900)  # JupyterLab, Chromium, a kernel killed and restarted: minutes on a loaded 2-CPU box
def test_label_a_recording_from_scratch_in_the_panel(label_lab):
    from playwright.sync_api import sync_playwright

    from cht_lab.session import open_session
    from cht_lab.tuning import sweep as tuning
    from cht_lab.tuning.labels import load_labels
    from cht_lab.tuning.simulate import answer

    truth = load_labels(label_lab["truth"])
    labels_csv = label_lab["session"] / "labels.csv"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": HEIGHT})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}")
                    if msg.type == "error" and not any(u in msg.text for u in UNRELATED_CONSOLE) else None)
            page.goto(f"{label_lab['base']}/lab/tree/{NOTEBOOK}?token={label_lab['token']}", timeout=60_000)
            _run_all(page)
            _wait_reviewed(page, 0)
            tab = page.locator(".cht-tab-label")

            def decide() -> str:
                """Answer the question shown from the original labels, with a click."""
                n, said = _reviewed(page), answer(truth, _candidate_time(page))
                tab.locator(f".cht-label-{said}").click()
                _wait_reviewed(page, n + 1)
                return said

            said = [decide(), decide()]
            # time order asks the first candidates of the recording: a cursor or a clock, rejected
            tab.locator(".cht-label-order button", has_text="time order").click()
            while "none" not in said:
                said.append(decide())
                assert len(said) < 8, said
            tab.locator(".cht-label-order button", has_text="ask what matters").click()
            # a shortcut key rejects the next candidate; "u" undoes it again
            keys = tab.locator(".cht-label-keys input")
            n = _reviewed(page)
            keys.type("n")
            _wait_reviewed(page, n + 1)
            keys.type("u")
            _wait_reviewed(page, n)
            # a missed event, added by time with the scrubber: an original event nobody has labeled yet
            rows = load_labels(labels_csv, non_events=True)["time"].tolist()
            missed = next(float(t) for t in truth["time"] if all(abs(t - r) > 0.5 for r in rows))
            time_box = tab.locator(".cht-label-time input")
            time_box.fill(str(missed))
            tab.locator(".cht-label-go").click()
            page.wait_for_function("(t) => document.querySelector('.cht-label-frame-caption').textContent"
                                   ".includes('(' + t.toFixed(3) + ' s)')", arg=missed, timeout=30_000)
            n = _reviewed(page)
            tab.locator(".cht-label-add-cut").click()
            _wait_reviewed(page, n + 1)  # the event added covers a candidate: reviewed now
            assert "added as cut" in tab.locator(".cht-label-message").inner_text()
            page.wait_for_function("() => !/loading/.test(document.querySelector('.cht-label-frame-caption')"
                                   ".textContent) && document.querySelector('img.cht-label-frame').naturalWidth === 360",
                                   timeout=120_000)  # the frame-exact picture, not the grey placeholder
            page.screenshot(path=str(ARTIFACTS / "browser-label-review.png"))
            assert not errors, errors
            decided = load_labels(labels_csv, non_events=True)
            assert len(decided) == _reviewed(page) >= 4 and "none" in decided["kind"].tolist()

            # the kernel dies in the middle of the review: labels.csv is whole and holds every decision
            os.kill(_kernel_pid(label_lab["proc"]), signal.SIGKILL)
            assert load_labels(labels_csv, non_events=True).equals(decided)
            _dismiss_dialogs(page)
            _run_all(page)
            page.wait_for_function("(n) => { const ps = document.querySelectorAll('.cht-label-progress');"
                                   " return ps.length && ps[ps.length - 1].textContent.startsWith(n + ' of '); }",
                                   arg=len(decided), timeout=120_000)  # the review resumed from the file
            while "settled:" not in page.locator(".cht-label-progress").last.inner_text():
                n, said = _reviewed(page), answer(truth, _candidate_time(page))
                tab.last.locator(f".cht-label-{said}").click()
                page.wait_for_function("(n) => { const ps = document.querySelectorAll('.cht-label-progress');"
                                       " return ps[ps.length - 1].textContent.startsWith(n + ' of '); }",
                                       arg=n + 1, timeout=30_000)
                assert n + 1 <= 12, "the review did not settle within 12 decisions"
            kept, shown = load_labels(labels_csv, non_events=True), _reviewed(page)

            # a reload shows the same review: nothing lives only in the page
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            page.reload()
            progress = page.locator(".cht-label-progress").last
            progress.wait_for(state="visible", timeout=120_000)
            page.wait_for_function("(n) => { const ps = document.querySelectorAll('.cht-label-progress');"
                                   " return ps.length && ps[ps.length - 1].textContent.startsWith(n + ' of '); }",
                                   arg=shown, timeout=60_000)
            assert "settled" in progress.inner_text()
            assert load_labels(labels_csv, non_events=True).equals(kept)

            # the Tuning tab offers the review's best threshold: F1 1.0 against the original labels
            panel = page.locator(".cht-panel").last
            panel.get_by_text("Tuning", exact=True).click()
            apply_best = panel.locator(".cht-apply-best")
            page.wait_for_function("() => [...document.querySelectorAll('.cht-apply-best')]"
                                   ".some(b => /apply best \\(/.test(b.textContent))", timeout=60_000)
            best = float(apply_best.inner_text().split("(")[1].rstrip(")"))
            assert "from the label review" in panel.locator(".cht-tuning-info").inner_text()
            page.screenshot(path=str(ARTIFACTS / "browser-label-tuning.png"))
        finally:
            browser.close()
    scores = open_session(label_lab["session"]).scores()
    # as good as the complete original labels make it: F1 1.0 on this sample with `settled`
    full = tuning.find_best(scores, truth, metric="settled")
    assert tuning.evaluate(scores, truth, best, metric="settled").f1 == pytest.approx(full.f1), (best, kept, full)
