"""`egoworld bench latency` end to end at the smallest size (the timings themselves are not tested)."""

from __future__ import annotations

import json

from egoworld.bench.latency import pass_frames
from egoworld.cli import main


def test_pass_frames_cover_the_horizon_in_4k_plus_1():
    assert [pass_frames(h, 64) for h in (8, 16, 32, 64, 6)] == [9, 17, 33, 65, 9]
    assert pass_frames(100, 64) == 65  # longer horizons: overlapping 64-frame chunks


def test_bench_latency_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "lat.md"
    code = main(
        [
            "bench",
            "latency",
            "--families",
            "cosmos",
            "--horizons",
            "4,8",
            "--steps",
            "1",
            "--repeats",
            "1",
            "--out",
            str(out),
        ]  # fmt: skip
    )
    assert code == 0
    data = json.loads(out.with_suffix(".json").read_text())
    rows = data["results"]
    assert [r["frames"] for r in rows] == [4, 8]
    assert [r["model"]["calls"] for r in rows] == [1, 1]  # one pass, one step
    assert [r["baseline"]["calls"] for r in rows] == [4, 8]  # one call per frame per step
    assert all(r["speedup"] > 0 for r in rows)
    assert all(0 < r[k]["denoiser_share"] <= 1 for r in rows for k in ("model", "baseline"))
    assert "| Cosmos (tiny) |" in out.read_text()
    assert out.with_suffix(".png").stat().st_size > 1000


def test_bench_rejects_bad_options(tmp_path, capsys):
    assert main(["bench", "latency", "--families", "sora", "--out", str(tmp_path / "x.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown ['sora']" in err[0]
    assert main(["bench", "latency", "--steps", "0", "--out", str(tmp_path / "x.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--steps: 0; expected an integer >= 1" in err[0]
    assert not list(tmp_path.iterdir())
