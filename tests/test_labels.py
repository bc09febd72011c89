"""labels.csv: valid files read into the normalised frame; every malformed file names the file, line and reason."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cht_lab.tuning.labels import LabelsError, as_labels, load_labels
from cht_lab.tools.samples import SAMPLES, sample_dir

COLUMNS = ["time", "end", "kind", "note"]


def write(tmp_path: Path, text: str, name: str = "labels.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_a_full_file_is_read_sorted_with_stable_dtypes(tmp_path):
    path = write(tmp_path, "time,end,kind,note\n"
                           "12.5,,cut,slide 3\n"
                           "3.0,4.0,gradual,fade to the agenda\n"
                           "7.25,,partial,\"dialog, a quarter of the screen\"\n")
    df = load_labels(path)
    assert list(df.columns) == COLUMNS
    assert df["time"].tolist() == [3.0, 7.25, 12.5]
    assert df["end"].iloc[0] == 4.0 and df["end"].iloc[1:].isna().all()
    assert df["kind"].tolist() == ["gradual", "partial", "cut"]
    assert df["note"].tolist() == ["fade to the agenda", "dialog, a quarter of the screen", "slide 3"]
    assert df["time"].dtype == np.float64 and df["end"].dtype == np.float64
    assert df.index.tolist() == [0, 1, 2]


def test_a_header_alone_is_a_session_without_events(tmp_path):
    df = load_labels(write(tmp_path, "time,end,kind,note\n"))
    assert df.empty and list(df.columns) == COLUMNS
    assert df["time"].dtype == np.float64 and df["end"].dtype == np.float64


def test_only_time_is_required_and_kind_follows_end(tmp_path):
    df = load_labels(write(tmp_path, "Time , End\n1.0,\n2.0,3.5\n"))  # header case and spaces do not matter
    assert df["kind"].tolist() == ["cut", "gradual"]
    assert df["note"].tolist() == ["", ""]
    assert math.isnan(df["end"].iloc[0]) and df["end"].iloc[1] == 3.5


def test_friendly_input_blank_lines_bom_crlf_and_a_comma_in_the_last_column(tmp_path):
    text = "\ufefftime,end,kind,note\r\n\r\n1.5,,CUT,switch to mail, then reply\r\n\r\n2.5,,cut,x\r\n"
    df = load_labels(write(tmp_path, text))
    assert df["time"].tolist() == [1.5, 2.5]
    assert df["kind"].tolist() == ["cut", "cut"]
    assert df["note"].iloc[0] == "switch to mail, then reply"


def test_extra_columns_are_ignored(tmp_path):
    df = load_labels(write(tmp_path, "time,kind,who,note\n1,cut,ann,first\n"))
    assert list(df.columns) == COLUMNS and df["note"].tolist() == ["first"]


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_bundled_sample_labels_read_back_as_generated(sample):
    path = sample_dir(sample) / "labels.csv"
    pd.testing.assert_frame_equal(load_labels(path), SAMPLES[sample].labels().fillna({"note": ""}),
                                  check_dtype=False)


HEADER = "time,end,kind,note\n"


@pytest.mark.parametrize("text, line, reason", [
    ("start,kind,note\n1.0,cut,x\n", 1, "missing column 'time'"),
    ("\n\ntime,time,kind\n1,1,cut\n", 3, "appears more than once"),
    (HEADER + "1.0,,cut,a\nabc,,cut,b\n", 3, "time 'abc' is not a number"),
    (HEADER + "1.0,,cut,a\n\n-2.0,,cut,b\n", 4, "negative"),
    (HEADER + "5.0,4.0,gradual,fade\n", 2, "end '4.0' is before time '5.0'"),
    (HEADER + "5.0,six,gradual,fade\n", 2, "end 'six' is not a number"),
    (HEADER + "1.0,,cut,a\n2.0,,fade,b\n", 3, "unknown kind 'fade'"),
    (HEADER + ",,cut,no time\n", 2, "time is empty"),
    (HEADER + "nan,,cut,a\n", 2, "not a finite number"),
    (HEADER + "1.0,,cut,\"a note\nover two lines\"\nx,,cut,b\n", 4, "time 'x' is not a number"),
    ("time,kind\n1.0,cut,extra\n", 2, "3 fields but the header has 2"),
    ("", 1, "empty file"),
    ("\n  \n", 1, "empty file"),
])
def test_malformed_files_name_the_file_the_line_and_the_reason(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(LabelsError) as err:
        load_labels(path)
    msg = str(err.value)
    assert str(path) in msg
    assert f"line {line}" in msg and err.value.line == line
    assert reason in msg
    assert isinstance(err.value, ValueError)


def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere" / "labels.csv"
    with pytest.raises(LabelsError, match="no such file") as err:
        load_labels(path)
    assert str(path) in str(err.value) and err.value.path == path


def test_a_binary_file_is_a_labels_error_not_a_crash(tmp_path):
    path = write(tmp_path, "")
    path.write_bytes(b"time\n\xff\xfe\x00\x01\n")
    with pytest.raises(LabelsError, match="not UTF-8") as err:
        load_labels(path)
    assert str(path) in str(err.value)


def test_as_labels_accepts_times_frames_paths_and_none(tmp_path):
    assert as_labels(None).empty
    assert as_labels([3.0, 1.0])["time"].tolist() == [1.0, 3.0]
    df = as_labels(pd.DataFrame({"time": [2.0], "end": [2.5]}))
    assert df["kind"].tolist() == ["gradual"] and list(df.columns) == COLUMNS
    path = write(tmp_path, HEADER + "1.0,,cut,a\n")
    assert as_labels(path)["note"].tolist() == ["a"]
    with pytest.raises(LabelsError, match="missing column 'time'"):
        as_labels(pd.DataFrame({"t": [1.0]}))
    with pytest.raises(LabelsError, match="before time"):
        as_labels(pd.DataFrame({"time": [2.0], "end": [1.0]}))
    with pytest.raises(LabelsError, match="non-negative"):
        as_labels([-1.0])
    with pytest.raises(LabelsError, match="unknown kind 'fade'"):
        as_labels(pd.DataFrame({"time": [1.0], "kind": ["fade"]}))
