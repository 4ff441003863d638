"""Horizon tables and reports: per-frame values → horizons, and the number of videos behind each mean."""

import csv
import json
import math

import numpy as np
import pytest

from egoworld.metrics.report import by_horizon, count_over_videos, markdown_table, write_report


def test_by_horizon_one_and_many_values_per_frame():
    row = by_horizon([9.0, 1.0, 2.0, np.nan, 4.0], [2, 3, 8])
    assert row["2"] == 2.0 and math.isnan(row["3"]) and math.isnan(row["8"])  # undefined, past the end
    assert row["overall"] == pytest.approx(7 / 3)  # frames 1…4, NaN skipped; frame 0 is shared
    per_object = np.array([[1.0, 1.0], [0.5, np.nan], [0.0, 1.0], [1.0, 1.0]])
    row = by_horizon(per_object, [1, 2, 3], end=3)
    assert row == {"1": 0.5, "2": 0.5, "3": row["3"], "overall": 0.5}  # overall: 3 defined pairs
    assert math.isnan(row["3"])  # at the trim frame


def test_report_records_how_many_videos_each_mean_averages(tmp_path):
    results = {
        "a": {"scs": {"2": 90.0, "16": 60.0, "overall": 80.0}},
        "b": {"scs": {"2": 70.0, "16": float("nan"), "overall": 70.0}},  # trimmed before frame 16
    }
    assert count_over_videos(results) == {"scs": {"2": 2, "16": 1, "overall": 2}}
    write_report(tmp_path / "r", results, [2, 16])
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["mean"]["scs"]["16"] == 60.0 and data["n"]["scs"] == {"2": 2, "16": 1, "overall": 2}
    rows = list(csv.DictReader(open(tmp_path / "r" / "results.csv")))
    mean16 = next(r for r in rows if r["video"] == "mean" and r["horizon"] == "16")
    assert mean16["n"] == "1" and mean16["value"] == "60.0"
    assert next(r for r in rows if r["video"] == "b" and r["horizon"] == "16")["n"] == "0"
    md = (tmp_path / "r" / "results.md").read_text()
    assert "| 80.00 | 60.00 (n=1) | 75.00 |" in md and "of 2 videos" in md
    table = markdown_table(data["mean"], [2, 16])
    assert "(n=" not in table  # counts shown only when given
