"""`egoworld sim` and its actions: bad arguments are one line before anything loads, nothing is written,
inputs stay as they were; state files that would inflate or unpickle are refused; train-observe shows
progress (tests/sim/test_loop.py)."""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pytest

from egoworld import io_utils
from egoworld.cli import main
from egoworld.io_utils import check_npz_sizes
from egoworld.sim.state import SceneState


def _digest(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _actions_file(path):
    poses = np.tile(np.eye(4), (17, 1, 1))
    poses[:, 2, 3] = np.linspace(0.5, 0.6, 17)
    np.savez(path, camera_poses=poses, hand_keypoints=np.zeros((17, 21, 3)), K=np.eye(3))
    return path


def _bomb(path, mebibytes=48):
    """An .npz whose one array inflates ~1000x: a header for `mebibytes` MiB of float64 zeros."""
    n = mebibytes * 2**20 // 8
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("meta.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (n,)})
            chunk = bytes(2**20)
            for _ in range(mebibytes):
                fh.write(chunk)
    return path


@pytest.fixture
def files(tmp_path):
    """A state-like npz, an actions npz, a fake episode folder and a data folder with one episode."""
    inputs = tmp_path / "inputs"
    episode = inputs / "data" / "episode_00000"
    (episode / "gt").mkdir(parents=True)
    (episode / "gt" / "depth.npy").write_bytes(b"depth")
    np.savez(inputs / "s.npz", meta=np.array("{}"))
    _actions_file(inputs / "a.npz")
    np.save(inputs / "s.npy", np.zeros(3))
    good = (inputs / "a.npz").read_bytes()
    (inputs / "trunc.npz").write_bytes(good[: len(good) // 2])
    old_out = tmp_path / "old_out"
    old_out.mkdir()
    (old_out / "summary.json").write_text("{}")
    (old_out / "s.npz").write_bytes((inputs / "s.npz").read_bytes())
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    return tmp_path


def _sim(t, **kw):
    args = {"--state": t / "inputs/s.npz", "--actions": t / "inputs/a.npz", "--out": t / "out", **kw}
    return ["sim", "--steps", "1"] + [str(x) for kv in args.items() for x in kv if kv[1] is not None]


BAD = [
    (lambda t: [*_sim(t), "--fov", "0"], "sim", "argument --fov: 0; expected a finite number > 0 and < 180"),
    (lambda t: [*_sim(t), "--fov", "nan"], "sim", "argument --fov: nan"),
    (lambda t: _sim(t) + ["--steps", "0"], "sim", "argument --steps: 0"),
    (lambda t: [*_sim(t), "--clips", "0"], "sim", "clips=0"),
    (lambda t: [*_sim(t), "--clips", "100000"], "sim", "at most 1000"),
    (lambda t: _sim(t, **{"--out": None}), "sim", "missing --out"),
    (lambda t: _sim(t, **{"--state": t / "none.npz"}), "sim", "--state "),
    (lambda t: _sim(t, **{"--state": t / "inputs/s.npy"}), "sim", "is a single .npy array; expected an .npz"),
    (lambda t: _sim(t, **{"--actions": t / "inputs/trunc.npz"}), "sim", "trunc.npz' is corrupt or not"),
    (lambda t: _sim(t, **{"--out": t / "inputs/s.npz"}), "sim", "exists and is not a folder"),
    (lambda t: _sim(t, **{"--state": t / "old_out/s.npz", "--out": t / "old_out"}), "sim", "holds the input"),
    (lambda t: _sim(t, **{"--out": t / "foreign"}), "sim", "is not a folder holding summary.json"),
    (lambda t: [*_sim(t), "--backend", "gt"], "sim", "backend 'gt' needs --episode"),
    (lambda t: [*_sim(t), "--model", str(t / "no-model")], "sim", "--model"),
    (lambda t: ["sim", "build-state", "--episode", str(t / "inputs/data/episode_00000"),
                "--out", str(t / "inputs/data/episode_00000/gt/depth.npy")], "sim", "expected a .npz path"),
    (lambda t: ["sim", "build-state", "--episode", str(t / "inputs/data/episode_00000"),
                "--out", str(t / "inputs/a.npz"), "--actions-out", str(t / "inputs/a.npz")], "sim",
     "are the same path"),
    (lambda t: ["sim", "build-state", "--episode", str(t / "inputs"), "--out", str(t / "inputs/s.npz")],
     "sim", "is a file of the input --episode"),
    (lambda t: ["sim", "build-state", "--episode", str(t / "nope"), "--out", str(t / "o.npz")], "sim",
     "--episode"),
    (lambda t: ["sim", "build-state", "--episode", str(t / "inputs"), "--out", str(t / "o.npz"),
                "--voxel", "0"], "sim build-state", "argument --voxel: 0"),
    (lambda t: ["sim", "build-state", "--episode", str(t / "inputs"), "--out", str(t / "o.npz"),
                "--frame", "-1"], "sim build-state", "argument --frame: -1"),
    (lambda t: ["sim", "train-observe", "--data", str(t / "inputs/data"), "--out", str(t / "m"),
                "--preset", "huge"], "sim train-observe", "invalid choice: 'huge'"),
    (lambda t: ["sim", "train-observe", "--data", str(t / "inputs/data"), "--out", str(t / "m"),
                "--lr", "nan"], "sim train-observe", "argument --lr: nan"),
    (lambda t: ["sim", "train-observe", "--data", str(t / "inputs/data"), "--out", str(t / "m"),
                "--batch", "0"], "sim train-observe", "argument --batch: 0"),
    (lambda t: ["sim", "train-observe", "--data", str(t / "inputs/data"), "--out", str(t / "inputs/data")],
     "sim", "is not a folder holding egoworld_observation.json"),
    (lambda t: ["sim", "train-observe", "--data", str(t / "inputs"), "--out", str(t / "m")], "sim",
     "no tabletop episodes"),
    (lambda t: ["sim", "train-observe", "--data", str(t / "inputs/data"), "--out", str(t / "foreign")], "sim",
     "is not a folder holding egoworld_observation.json"),
]  # fmt: skip


@pytest.mark.parametrize("case", range(len(BAD)), ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments_one_line_nothing_written(case, files, capsys):
    make, command, needle = BAD[case]
    before = _digest(files)
    entries = sorted(p.name for p in files.iterdir())
    assert main(make(files)) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"egoworld {command}: error: "), err
    assert needle in err[0], err[0]
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in files.iterdir()) == entries  # no new output, no temp folder
    assert _digest(files) == before  # inputs unchanged


def test_inflating_npz_is_refused_before_numpy_allocates(tmp_path, monkeypatch, capsys):
    bomb = _bomb(tmp_path / "bomb.npz")
    assert bomb.stat().st_size < 2**20  # ~1000x compression
    monkeypatch.setattr(io_utils, "MIN_INFLATION_ALLOWANCE", 2**20)
    with pytest.raises(ValueError, match=r"declares 48 MiB of arrays in a 0.0 MiB file \(more than 100x\)"):
        SceneState.load(bomb)
    np.savez(tmp_path / "a.npz", camera_poses=np.eye(4)[None])
    argv = ["sim", "--state", str(bomb), "--actions", str(tmp_path / "a.npz"), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "refusing to inflate it" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_npz_headers_that_lie_and_pickles_are_refused(tmp_path):
    liar = tmp_path / "liar.npz"
    with zipfile.ZipFile(liar, "w") as zf:
        with zf.open("block_keys.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
            )
            fh.write(bytes(64))
    with pytest.raises(ValueError, match=r"block_keys.npy claims \[1000000000000\] float64"):
        SceneState.load(liar)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"format": "egoworld.sim.state"}], dtype=object))
    with pytest.raises(ValueError, match="holds Python objects \\(a pickle\\)"):
        SceneState.load(pickled)
    with pytest.raises(ValueError, match="is a single .npy array"):
        np.save(tmp_path / "s.npy", np.zeros(3))
        SceneState.load(tmp_path / "s.npy")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        SceneState.load(tmp_path)
    check_npz_sizes(_actions_file(tmp_path / "ok.npz"))  # an ordinary archive passes


def test_actions_observation_must_be_uint8_at_the_model_size(tmp_path):
    from egoworld.sim.actions_file import load_actions

    path = _actions_file(tmp_path / "a.npz")
    data = dict(np.load(path))
    np.savez(tmp_path / "nan.npz", **data, observation=np.full((32, 32, 3), np.nan))
    with pytest.raises(ValueError, match="observation is float64; expected uint8 \\[32, 32, 3\\]"):
        load_actions(tmp_path / "nan.npz", 2, 9, (32, 32))
    np.savez(tmp_path / "small.npz", **data, observation=np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="observation has shape \\[16, 16, 3\\]; expected \\[32, 32, 3\\]"):
        load_actions(tmp_path / "small.npz", 2, 9, (32, 32))
    np.savez(tmp_path / "ok.npz", **data, observation=np.zeros((32, 32, 3), np.uint8))
    assert load_actions(tmp_path / "ok.npz", 2, 9, (32, 32))["observation"].shape == (32, 32, 3)
