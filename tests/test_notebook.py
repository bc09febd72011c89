"""The notebook is the product's front door: it must run top to bottom in a real kernel."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient (pip install -e '.[test]')")
pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel (pip install -e '.[test]')")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "live_session.ipynb"
KEY_CELLS = {"setup", "score", "panel", "tune", "sweep", "best-threshold", "live", "export"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PROBE_TAG = "test-probe"  # a cell the test appends: what the tests read, kept out of the notebook itself
PROBE = "import json\nprint('probe ' + json.dumps({'live_panel': live_panel.update_stats, 'panel': panel.update_stats}))"


def _tagged(nb, tag: str):
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


def _text(cell) -> str:
    """Everything a cell printed or displayed as text."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], f"outputs committed in cell: {cell.source[:60]!r}"
        assert cell.execution_count is None
    assert "widgets" not in nb.metadata, "saved widget state committed"
    tags = {t for c in nb.cells for t in c.get("metadata", {}).get("tags", [])}
    assert KEY_CELLS <= tags


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory):
    """Run the notebook headless in a fresh kernel; sessions and replays go into a temp dir."""
    from cht_lab.tools.samples.render import ENV_VAR, sample_dir

    work = tmp_path_factory.mktemp("notebook")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE, metadata={"tags": [PROBE_TAG]}))
    bundled = sample_dir("slides")  # generated once if missing; the run works on a copy (it writes an index)
    shutil.copytree(bundled, work / "samples" / bundled.name, ignore=shutil.ignore_patterns("index", ".cache"))
    with pytest.MonkeyPatch.context() as mp:  # the kernel inherits this environment
        mp.setenv(ENV_VAR, str(work / "samples"))
        (work / "tmp").mkdir()
        mp.setenv("TMPDIR", str(work / "tmp"))
        mp.setenv("CHT_LAB_DATA", str(work / "data"))
        mp.setenv("MPLBACKEND", "Agg")
        client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False,
                                         resources={"metadata": {"path": str(work)}})
        t0 = time.monotonic()
        client.execute()
        elapsed = time.monotonic() - t0
    print(f"notebook executed in {elapsed:.1f} s")
    return nb


def test_notebook_runs_without_errors(executed):
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            assert out.output_type != "error", f"{out.get('ename')}: {out.get('evalue')}"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Traceback" not in out.text and "Exception in thread" not in out.text, out.text


def test_panel_cell_displays_a_widget(executed):
    for tag in ("panel", "live"):
        cell = _tagged(executed, tag)
        assert any(WIDGET_MIME in out.get("data", {}) for out in cell.outputs), f"no widget shown by {tag!r}"


def test_recorded_session_is_scored_and_cut_into_audio_chunks(executed):
    text = _text(_tagged(executed, "score"))
    assert int(re.search(r"(\d+) audio chunks", text).group(1)) > 0, text
    assert int(re.search(r"(\d+) frames scored", text).group(1)) > 0, text


def test_a_strict_threshold_shows_fewer_detections(executed):
    text = _text(_tagged(executed, "tune"))
    counts = [int(n) for n in re.findall(r"threshold [\d.]+: (\d+) detections", text)]
    assert len(counts) == 2, text
    assert 0 < counts[1] < counts[0], text


def test_best_threshold_is_a_number_with_a_useful_f1(executed):
    text = _text(_tagged(executed, "best-threshold"))
    best = float(re.search(r"best threshold: ([-+\d.eE]+)", text).group(1))
    f1 = float(re.search(r"F1 ([\d.]+)", text).group(1))
    assert best > 0
    assert f1 > 0.5, text
    sweep_text = _text(_tagged(executed, "sweep"))
    assert "f1" in sweep_text and "threshold" in sweep_text


def test_live_panel_updates_arrived_on_the_kernel_loop(executed):
    text = _text(_tagged(executed, "live"))
    status = re.search(r"state (\w+), backend (\w+), (\d+) frames, (\d+) captures, (\d+) audio chunks, errors (\d+)",
                       text)
    assert status, text
    assert status.group(1) == "stopped"
    assert int(status.group(3)) > 0 and int(status.group(4)) > 0
    assert int(status.group(6)) == 0, text
    probe = json.loads(_text(_tagged(executed, PROBE_TAG)).split("probe ", 1)[1])
    for stats in probe.values():
        assert stats["mode"] == "loop"  # the kernel's event loop was found and used
        assert stats["off_thread"] == 0 and stats["errors"] == 0
        assert 0 < stats["applies"] <= stats["requests"]


def test_live_cell_awaits_instead_of_blocking():
    """A blocking `live.wait()` freezes the panel ("0 frames") until the cell ends."""
    source = _tagged(nbformat.read(NOTEBOOK, as_version=4), "live").source
    assert "await live.wait_async(" in source
    assert not re.search(r"\blive\.wait\(", source) and "time.sleep" not in source


def test_notebook_prints_no_debug_output(executed):
    for cell in executed.cells:
        if cell.cell_type != "code" or PROBE_TAG in cell.metadata.get("tags", []):
            continue
        text = _text(cell)
        assert "panel updates" not in text and "'mode'" not in text, f"debug output in {cell.source[:40]!r}: {text}"


def test_exported_frame_index_has_rows(executed):
    import pandas as pd

    text = _text(_tagged(executed, "export"))
    m = re.search(r"exported (\d+) frames to (\S+\.parquet)", text)
    assert m, text
    path = Path(m.group(2))
    assert int(m.group(1)) > 0
    table = pd.read_parquet(path)
    assert len(table) == int(m.group(1))
    assert {"id", "ts", "score", "path"} <= set(table.columns)
    assert all((path.parent / p).is_file() for p in table["path"])  # the JPEGs it points at exist
