"""The GPU suite: its dry run end to end (the CI test of benchmarks/gpu/run.sh), the independence
of measurements, the real-size plan, and where its random generators live. Timings are not tested."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from egoworld.bench import gpu_suite
from egoworld.bench.gpu_suite import COLUMNS, Measurement, SuiteConfig, plan, run_suite

ROOT = Path(__file__).resolve().parents[2]
# the column of each table that must hold a positive number in every measured row
KEY_COLUMN = {"train": "step s", "fps": "frames/s", "sam2": "seconds", "latency": "model s"}


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """{section title: [row as {column: cell}]} of every Markdown table in the report."""
    out, title, header = {}, None, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            title, header = line[3:], None
        elif line.startswith("|") and title is not None:
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if header is None:
                header = cells
            elif not set(line) <= set("|-: "):
                out.setdefault(title, []).append(dict(zip(header, cells)))
    return out


@pytest.mark.slow
def test_dry_run_script_writes_a_row_with_numbers_per_measurement(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks/gpu/run.sh"), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md", "run.log"]
    expected = plan(SuiteConfig.dry(out))
    log = (out / "run.log").read_text()
    assert f"{len(expected)} measurements on CPU" in log and "rows ok, 0 errors, 0 skipped" in log

    data = json.loads((out / "results.json").read_text())
    rows = data["rows"]
    assert [r["status"] for r in rows] == ["ok"] * len(rows), [r.get("error") for r in rows]
    # every planned measurement produced its rows (latency: one per horizon, here one)
    for m in expected:
        assert sum(r["kind"] == m.kind and all(r[k] == v for k, v in m.labels.items()) for r in rows) == 1

    found = tables((out / "results.md").read_text())
    assert set(found) == {gpu_suite.TITLES[k] for k in COLUMNS}
    for kind, title in gpu_suite.TITLES.items():
        md_rows = found[title]
        assert len(md_rows) == sum(r["kind"] == kind for r in rows)
        for row in md_rows:
            assert row["status"] == "ok"
            assert float(row[KEY_COLUMN[kind]]) > 0
            assert all(cell != "—" for cell in row.values()), row
    train = found[gpu_suite.TITLES["train"]]
    assert len(train) == 8 and {r["grad. checkpointing"] for r in train} == {"on", "off"}
    assert all(float(r["TFLOP / step"]) > 0 for r in train)  # FlopCounterMode counted something
    latency = found[gpu_suite.TITLES["latency"]]
    assert {r["variant"] for r in latency} == {
        "default",
        "sdpa=flash",
        "sdpa=efficient",
        "sdpa=math",
        "compile",
    }
    # 4 future frames, 1 sampler step: one pass (or one SVD chunk) vs one loop per frame
    assert all(r["model calls"] == "1" and r["baseline calls"] == "4" for r in latency)


def _fake(kind: str, est: float, fn) -> Measurement:
    return Measurement(
        kind, {"model": f"fake {kind}", "size": "1x1", "frames": 1, "checkpointing": "on"}, fn, est
    )


def test_a_failing_measurement_is_recorded_and_the_run_goes_on(tmp_path):
    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    good = {"trainable_params": 10, "step_s": 0.5, "peak_bytes": 2**20, "flops": 1e12, "mfu": 0.25}
    updates = []
    rows = run_suite(
        [_fake("train", 0, oom), _fake("train", 0, lambda: [good]), _fake("train", 1e6, lambda: [good])],
        budget_s=60,
        on_update=lambda r: updates.append(len(r)),
    )
    assert [r["status"] for r in rows] == ["error", "ok", "skipped"]
    assert rows[0]["error"].startswith("OutOfMemoryError: CUDA out of memory")
    assert updates == [1, 2, 3]  # the report is rewritten after every measurement

    meta = gpu_suite.machine_meta(SuiteConfig.dry(tmp_path), "test")
    gpu_suite.write_results(tmp_path, rows, meta)
    md = tables((tmp_path / "results.md").read_text())[gpu_suite.TITLES["train"]]
    assert md[0]["step s"] == "—" and md[0]["status"].startswith("error: OutOfMemoryError")
    assert md[1]["step s"] == "0.500" and md[1]["MFU"] == "25.0%" and md[1]["status"] == "ok"
    assert md[2]["status"].startswith("skipped:")


def test_a_measurement_running_past_the_budget_is_stopped(tmp_path):
    t0 = time.monotonic()
    rows = run_suite([_fake("train", 0, lambda: time.sleep(30))], budget_s=0.3)
    assert time.monotonic() - t0 < 10
    assert rows[0]["status"] == "error" and rows[0]["error"].startswith("TimeoutError")


def test_an_interrupted_run_records_where_it_stopped():
    def interrupt():
        raise KeyboardInterrupt  # what `timeout --signal=INT` in run.sh delivers

    updates = []
    with pytest.raises(KeyboardInterrupt):
        run_suite(
            [_fake("train", 0, interrupt), _fake("fps", 0, list)], budget_s=60, on_update=updates.append
        )
    assert [(r["kind"], r["status"]) for r in updates[-1]] == [("train", "error"), ("fps", "skipped")]


def test_real_plan_has_the_issues_measurements(tmp_path):
    measurements = plan(SuiteConfig(out=tmp_path))  # nothing is built until a measurement runs
    train = [m.labels for m in measurements if m.kind == "train"]
    assert {(t["model"], t["size"], t["frames"]) for t in train} == {
        ("SVD-XT UNet", "512x512", 9),
        ("Cosmos-Predict2-2B DiT", "480x640", 17),
        ("Wan 2.1 Fun-InP 1.3B DiT", "480x832", 17),
        ("EgoSim 52-ch Fun-InP 1.3B DiT", "480x832", 61),
    }
    assert sorted(t["checkpointing"] for t in train) == ["off"] * 4 + ["on"] * 4
    assert [(m.labels["backbone"], m.labels["size"]) for m in measurements if m.kind == "fps"] == [
        ("SVD", "512x512"),
        ("Cosmos", "512x512"),
        ("Wan", "512x512"),
    ]
    assert [m.labels["frames"] for m in measurements if m.kind == "sam2"] == [16]
    latency = [m.labels for m in measurements if m.kind == "latency"]
    assert [(r["variant"], r["backbone"]) for r in latency] == [
        ("default", "SVD"),
        ("default", "Cosmos"),
        ("default", "Wan"),
        ("sdpa=flash", "Wan"),
        ("sdpa=efficient", "Wan"),
        ("sdpa=math", "Wan"),
        ("compile", "Wan"),
    ]
    assert [m.kind for m in plan(SuiteConfig(out=tmp_path, only=("sam2", "fps")))] == ["fps"] * 3 + ["sam2"]


def test_random_inputs_use_generators_on_the_target_device(monkeypatch):
    """The suite never hands a CPU generator to a CUDA draw: every generator it makes is asked for on
    the device of the tensors it fills. 'meta' stands in for CUDA here (meta has no generators of its
    own, so the recorder returns a CPU one, whose draws egoworld.noise moves to meta)."""
    real_generator = torch.Generator
    asked = []

    def recording_generator(device="cpu"):
        asked.append(torch.device(device))
        return real_generator("cpu" if torch.device(device).type == "meta" else device)

    monkeypatch.setattr(torch, "Generator", recording_generator)
    for spec in gpu_suite.TRAIN_SPECS["tiny"]:  # the real sizes take the same path
        batch, _ = gpu_suite.train_inputs(spec, "meta", seed=0)
        assert {t.device.type for t in batch.values()} == {"meta"}
    img, actions, _ = gpu_suite.fps_inputs(64, 64, 17, "meta", seed=0)
    assert img.device.type == actions.device.type == "meta"
    assert len(asked) == 5 and {d.type for d in asked} == {"meta"}

    # and no other code path of the suite (or of the latency library) makes a generator
    for module in ("gpu_suite", "latency"):
        source = (ROOT / f"src/egoworld/bench/{module}.py").read_text()
        assert len(re.findall(r"torch\.Generator\(", source)) == (1 if module == "gpu_suite" else 0)


def test_suite_rejects_bad_options(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    assert gpu_suite.main(["--dry-run"]) == 2
    assert gpu_suite.main(["--dry-run", "--out", str(tmp_path / "o"), "--only", "train,nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "expected --out DIR" in err[0] and "'nope'" in err[1]
    assert not list(tmp_path.iterdir())
