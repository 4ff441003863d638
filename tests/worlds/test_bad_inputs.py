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
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert err.startswith("egoworld worlds") and "Traceback" not in err


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--task", "fly"], "argument --task: invalid choice: 'fly' (choose from 'nav', 'humanoid'"),
        (["--task", "nav", "--size", "17"], "even"),
        (["--task", "nav", "--size", "8"], "argument --size: 8; expected an integer in [16, 1024]"),
        (["--task", "nav", "--size", "nan"], "argument --size: 'nan' is not an integer"),
        (["--task", "nav", "--frames", "1"], "argument --frames: 1; expected an integer in [2, 100000]"),
        (["--task", "nav", "--episodes", "0"], "argument --episodes: 0"),
        (["--task", "nav", "--workers", "0"], "argument --workers: 0"),
        (["--task", "nav", "--seed", "-1"], "argument --seed: -1"),
        (
            ["--task", "nav", "--trajectory", "spiral"],
            "invalid choice: 'spiral' (choose from 'random', 'explore', 'circle'",
        ),
        (
            ["--task", "tabletop", "--effector", "claw"],
            "invalid choice: 'claw' (choose from 'hand', 'gripper')",
        ),
        (["--task", "tabletop", "--trajectory", "circle"], "unknown tabletop options ['trajectory']"),
        (["--task", "turns"], "task 'turns' needs --textures DIR: the folder of pictures it is made from"),
    ],
)
def test_bad_arguments(tmp_path, capsys, extra, needle):
    _fails([*BASE, "--out", str(tmp_path / "o"), *extra], capsys, needle)
    assert not list(tmp_path.iterdir())


def test_help_lists_the_choices(capsys):
    assert main(["worlds", "generate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    tasks, walks = "{nav,humanoid,tabletop,passive,turns}", "{random,explore,circle,square,look}"
    for choices in (tasks, walks, "{hand,gripper}"):
        assert choices in text
    assert "examples: egoworld worlds generate --task nav" in text


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
