"""Episode prompts on the data side: EgoDex's description attributes (which one applies, bytes or str),
the plain layout's npz `prompt`, the synthetic exporter's description, and prepared clips carrying
their episode's prompt in the manifest (`write_clips`, `sim prepare`, `--check`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from egoworld.cli import main
from egoworld.data.safe_h5 import open_h5
from egoworld.sim.episode_prompts import egodex_prompt

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
FRAMES, SIZE = 9, 32


def generate(out: Path, fmt: str, episodes: int = 1) -> Path:
    """Tabletop episodes exported with `--format fmt` (in a child process: MuJoCo)."""
    argv = ["worlds", "generate", "--task", "tabletop", "--format", fmt, "--episodes", str(episodes)]
    argv += ["--frames", str(FRAMES), "--size", str(SIZE), "--seed", "0", "--out", str(out), "--no-progress"]
    done = subprocess.run([sys.executable, "-m", "egoworld", *argv], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def egx(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("egx") / "egx", "egodex", episodes=2)


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("plain") / "plain", "plain")


def prepare_argv(src: Path, out: Path) -> list[str]:
    argv = ["sim", "prepare", str(src), "--out", str(out), "--size", str(SIZE), str(SIZE), "--frames", "5"]
    return [*argv, "--stride", "4", "--depth", str(src / "depth"), "--no-progress"]


def _attrs_file(path: Path, attrs: dict) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
    return path


REVERSIBLE = {"llm_type": "reversible", "llm_description": "open the box"}
REVERSIBLE["llm_description2"] = "close the box"


@pytest.mark.parametrize(
    "attrs, want",
    [
        ({}, None),
        ({"llm_description": "open the box"}, "open the box"),
        ({"llm_description": b"open the box"}, "open the box"),
        ({"llm_description": np.bytes_(b"open the box")}, "open the box"),
        ({"llm_description": np.array([b"open the box"])}, "open the box"),
        ({"llm_description": "  open the box \n"}, "open the box"),
        ({"llm_description": "   "}, None),
        ({**REVERSIBLE, "which_llm_description": "1"}, "open the box"),
        ({**REVERSIBLE, "which_llm_description": "2"}, "close the box"),
        ({**REVERSIBLE, "which_llm_description": b"2"}, "close the box"),
        ({**REVERSIBLE, "llm_type": np.bytes_(b"reversible"), "which_llm_description": "2"}, "close the box"),
        ({**REVERSIBLE}, "open the box"),  # no which: the first description
        ({**REVERSIBLE, "llm_type": "irreversible", "which_llm_description": "2"}, "open the box"),
        ({"llm_type": "reversible", "llm_description": "open", "which_llm_description": "2"}, None),
    ],
)  # fmt: skip
def test_egodex_attribute_rule(tmp_path, attrs, want):
    path = _attrs_file(tmp_path / "e.hdf5", attrs)
    with open_h5(path) as f:
        assert egodex_prompt(f, path) == want


@pytest.mark.parametrize(
    "attrs, needle",
    [
        ({"llm_description": 3}, "attribute 'llm_description' is int64 '3'; expected text"),
        ({"llm_description": np.array([b"a", b"b"])}, "attribute 'llm_description' is an array of shape [2]"),
        ({"llm_description": np.array([b"\xff\xfe"])}, "attribute 'llm_description' is not UTF-8 text"),
        ({**REVERSIBLE, "which_llm_description": 2}, "attribute 'which_llm_description' is int64"),
        ({"llm_description": "x", "llm_type": 1.5}, "attribute 'llm_type' is float64"),
        ({"llm_description": h5py.Empty("f")}, "attribute 'llm_description' is Empty"),
    ],
)  # fmt: skip
def test_an_attribute_that_is_not_text_is_one_line(tmp_path, attrs, needle):
    path = _attrs_file(tmp_path / "e.hdf5", attrs)
    with open_h5(path) as f, pytest.raises(ValueError) as err:
        egodex_prompt(f, path)
    assert str(err.value).startswith(f"{path}: ") and needle in str(err.value), err.value
    assert len(str(err.value).splitlines()) == 1


def test_sim_prepare_refuses_a_bad_attribute_and_writes_nothing(egx, tmp_path, capsys):
    src = tmp_path / "src"
    shutil.copytree(egx / "tabletop", src / "tabletop")
    shutil.copytree(egx / "depth", src / "depth")
    with h5py.File(src / "tabletop" / "1.hdf5", "a") as f:
        f.attrs["llm_description"] = np.arange(3.0)
    assert main(prepare_argv(src, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "1.hdf5: attribute 'llm_description' is an array of shape [3]" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output, no temporary folder


def test_exported_descriptions_reach_the_prepared_clips(egx, tmp_path, capsys):
    from egoworld.sim.egodex import read_episode
    from egoworld.sim.prepared import load_clips, read_manifest

    episodes = [read_episode(egx / "tabletop" / f"{i}.mp4", egx / "tabletop" / f"{i}.hdf5") for i in (0, 1)]
    for ep in episodes:  # what the generator knows, in words
        assert ep.prompt.startswith("The right hand reaches for a small ") and "on a table" in ep.prompt
    assert episodes[0].prompt != episodes[1].prompt
    out = tmp_path / "prep"
    assert main(prepare_argv(egx, out)) == 0
    assert "4 clips with a prompt (2 distinct)" in capsys.readouterr().out
    meta = read_manifest(out)
    assert meta["prompts"] == [ep.prompt for ep in episodes]
    assert [c["prompt"] for c in meta["clips"]] == [0, 0, 1, 1]
    assert [c["prompt"] for c in load_clips(out)] == [episodes[i].prompt for i in (0, 0, 1, 1)]
    assert main(["sim", "prepare", "--check", str(out)]) == 0
    assert "  prompts: 4 of 4 clips, 2 distinct" in capsys.readouterr().out.splitlines()


def _rewrite_npz(path: Path, **changes) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path.unlink()
    np.savez(path, **arrays)


def test_plain_layout_prompt(plain, tmp_path, capsys):
    from egoworld.sim.plain_video import read_episode
    from egoworld.sim.prepared import load_clips

    video, npz = plain / "tabletop" / "0.mp4", plain / "tabletop" / "0.npz"
    with np.load(npz) as z:  # a unicode string, read without pickle
        assert z["prompt"].dtype.kind == "U" and z["prompt"].shape == ()
    prompt = read_episode(video, npz).prompt
    assert prompt.startswith("The right hand reaches for a small ")
    assert main(prepare_argv(plain, tmp_path / "prep")) == 0
    assert {c["prompt"] for c in load_clips(tmp_path / "prep")} == {prompt}

    src = tmp_path / "src"
    shutil.copytree(plain, src)
    copy = src / "tabletop" / "0.npz"
    _rewrite_npz(copy, prompt=None)
    assert read_episode(video, copy).prompt is None  # no prompt: not an error
    for bad, needle in (
        (np.array([1, 2]), "prompt is int64 [2]; expected a unicode string"),
        (np.array(["a", "b"]), "prompt is <U1 [2]; expected a unicode string"),
        (np.array(b"bytes"), "prompt is |S5 []; expected a unicode string"),
        (np.array(["x"], dtype=object), "holds Python objects (a pickle)"),
    ):
        _rewrite_npz(copy, prompt=bad)
        with pytest.raises(ValueError, match=None) as err:
            read_episode(video, copy)
        assert needle in str(err.value) and len(str(err.value).splitlines()) == 1, err.value
    out = tmp_path / "out"
    assert main(prepare_argv(src, out)) == 2  # the last damage, through the command
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds Python objects" in err and not out.exists(), err


def _clip(value: int) -> dict:
    video = np.full((5, 16, 16, 3), value, np.uint8)
    return {
        "target": video, "scene": video, "mask": np.zeros((5, 16, 16), bool), "skeleton": video,
        "K": np.array([[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]), "cam_to_world": np.tile(np.eye(4), (5, 1, 1)),
        "hand_keypoints": np.full((5, 2, 21, 3), np.nan, np.float32),
    }  # fmt: skip


def test_write_clips_keeps_prompts_and_the_check_reads_them(tmp_path, capsys):
    from egoworld.sim.observe_trainer import PreparedClips
    from egoworld.sim.prepared import check_prepared, load_clips, read_manifest, write_clips

    prompts = ["open the box", None, "open the box", "close the box"]
    clips = [{**_clip(10 * i), "prompt": p} for i, p in enumerate(prompts)]
    write_clips(tmp_path / "prep", clips, {"layout": "test"})
    meta = read_manifest(tmp_path / "prep")
    assert meta["prompts"] == ["open the box", "close the box"]
    assert [c.get("prompt") for c in meta["clips"]] == [0, None, 0, 1]
    assert [c["prompt"] for c in load_clips(tmp_path / "prep")] == prompts
    data = PreparedClips(tmp_path / "prep", 5, 16, 16)
    assert data.prompts == prompts and data[3]["prompt"] == "close the box" and data[1]["prompt"] is None
    problems, summary = check_prepared(tmp_path / "prep")
    assert problems == [] and summary["prompts"] == "3 of 4 clips, 2 distinct"

    meta["clips"][1]["prompt"] = 7  # an index beyond the table
    (tmp_path / "prep" / "egoworld_sim_data.json").write_text(json.dumps(meta))
    problems, summary = check_prepared(tmp_path / "prep")
    assert summary["prompts"] == "unreadable" and any("clip 1 of shard 0 has prompt 7" in p for p in problems)
    with pytest.raises(ValueError, match="expected a non-empty str or None"):
        write_clips(tmp_path / "bad", [{**_clip(0), "prompt": 3}], {})
    assert not (tmp_path / "bad").exists()


def test_the_description_says_what_happened():
    from egoworld.worlds.tabletop_prompt import colour_name, describe_episode

    colours = [colour_name(c) for c in ([0.9, 0.2, 0.2], [0.2, 0.3, 0.9], [0.5, 0.5, 0.5])]
    assert colours == ["red", "blue", "grey"]
    movable = [{"shape": "box", "rgb": None}, {"shape": "cylinder", "rgb": [0.2, 0.8, 0.2]}]
    cam = np.eye(4)  # OpenCV camera at the origin: x right, y down, z forward
    cam[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # looking along world +x, z up (the tabletop's head)
    poses = np.zeros((3, 2, 7))
    poses[:, 1, :3] = [[0.0, 0.0, 0.8], [0.0, 0.0, 0.9], [0.0, 0.2, 0.8]]  # lifted, moved to world +y
    text = describe_episode(movable, 1, poses, np.stack([cam] * 3))
    want = "among 2 objects on a table, picks it up, moves it to the left and puts it down."
    assert text == f"The right hand reaches for a small green cylinder {want}"
    poses[2, 1, :3] = [0.2, 0.0, 0.8]  # world +x: away from the camera
    assert "moves it farther away and" in describe_episode(movable, 1, poses, np.stack([cam] * 3))
    poses[:, 0, :3] = 0.0
    assert describe_episode(movable, 0, poses, np.stack([cam] * 3), "gripper") == (
        "The gripper reaches for a small textured box among 2 objects on a table and pulls back."
    )
