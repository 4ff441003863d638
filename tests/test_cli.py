"""The CLI entry point and the demo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from egoworld.cli import build_parser, main

COMMANDS = {"demo", "train", "rollout", "eval", "data", "worlds", "sim", "bench"}


def test_every_documented_command_is_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    missing = COMMANDS - set(sub.choices)
    assert not missing, f"commands not registered yet: {missing}"


def test_help_is_fast_and_imports_no_torch():
    code = "import sys; from egoworld.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--frames", "9", "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "egoworld demo: using" in printed
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["frames"] == 9 and set(metrics["psnr"]) == {"frame_2", "frame_4", "frame_8"}
    assert (tmp_path / "demo" / "side_by_side.mp4").stat().st_size > 0


def test_bad_demo_input_is_one_line(capsys):
    assert main(["demo", "--frames", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["egoworld demo: error: --frames=1; expected at least 2"]


@pytest.mark.parametrize("argv", [["train", "no-such.yaml"]])
def test_missing_files_are_reported_not_raised(argv, capsys):
    assert main(argv) == 2
    assert "not found" in capsys.readouterr().err
