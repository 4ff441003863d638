"""Bad requests to `egoworld worlds generate`: one clear line, exit 2, nothing overwritten."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from egoworld.cli import main
from egoworld.worlds import textures

BASE = ["worlds", "generate", "--episodes", "1", "--frames", "3", "--size", "16", "--no-progress"]


def _fails(argv, capsys, needle: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--task", "fly"], "unknown task 'fly'"),
        (["--task", "nav", "--size", "17"], "even"),
        (["--task", "nav", "--size", "8"], "size must be an integer in [16, 1024]"),
        (["--task", "nav", "--frames", "1"], "frames"),
        (["--task", "nav", "--episodes", "0"], "episodes"),
        (["--task", "nav", "--workers", "0"], "workers"),
        (["--task", "nav", "--trajectory", "spiral"], "spiral"),
        (["--task", "tabletop", "--effector", "claw"], "claw"),
    ],
)
def test_bad_arguments(tmp_path, capsys, extra, needle):
    _fails([*BASE, "--out", str(tmp_path / "o"), *extra], capsys, needle)
    assert not (tmp_path / "o").exists()


def test_texture_folders(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(
        [*BASE, "--task", "nav", "--out", str(tmp_path / "o"), "--textures", str(empty)], capsys, "no images"
    )
    _fails(
        [*BASE, "--task", "nav", "--out", str(tmp_path / "o"), "--textures", str(tmp_path / "nope")],
        capsys,
        "does not exist",
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not a png")
    _fails([*BASE, "--task", "nav", "--out", str(tmp_path / "o"), "--textures", str(bad)], capsys, "a.png")
    assert not (tmp_path / "o").exists()
    good = tmp_path / "good"
    good.mkdir()
    for i in range(2):
        Image.fromarray(np.full((20, 30, 3), 60 + 90 * i, np.uint8)).save(good / f"p{i}.jpg")
    assert len(textures.load_folder(good)) == 2
    assert main([*BASE, "--task", "nav", "--out", str(tmp_path / "o"), "--textures", str(good)]) == 0
    meta = json.loads((tmp_path / "o/egoworld_world.json").read_text())
    assert meta["textures"] == textures.digest(textures.load_folder(good))


def test_different_dataset_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "o"
    assert main([*BASE, "--task", "nav", "--out", str(out), "--seed", "1"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _fails([*BASE, "--task", "nav", "--out", str(out), "--seed", "2"], capsys, "different dataset")
    _fails([*BASE, "--task", "passive", "--out", str(out), "--seed", "1"], capsys, "different dataset")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    _fails([*BASE, "--task", "nav", "--out", str(other)], capsys, "not empty")
    assert (other / "keep.txt").read_text() == "mine" and len(list(other.iterdir())) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
