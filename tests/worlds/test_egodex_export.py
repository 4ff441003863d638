"""`worlds generate --task tabletop --format egodex`: EgoDex keys read back with h5py and PyAV, and
the joints projected the way EgoDex's own 2-D visualiser does (inverse camera pose, then
cv2.projectPoints with camera/intrinsic) land where the synthetic renderer put them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import h5py
import numpy as np
import pytest

from egoworld.cli import main
from egoworld.sim.egodex import joint_names

FRAMES, SIZE = 9, 32
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def generate(out: Path, *extra: str) -> subprocess.CompletedProcess:
    """`egoworld worlds generate` in a child process (MuJoCo stays out of the test process)."""
    argv = ["worlds", "generate", "--task", "tabletop", "--episodes", "1", "--frames", str(FRAMES)]
    argv += ["--size", str(SIZE), "--seed", "5", "--out", str(out), "--no-progress", *extra]
    return subprocess.run(
        [sys.executable, "-m", "egoworld", *argv], capture_output=True, text=True, timeout=300, env=ENV
    )


@pytest.fixture(scope="module")
def egx(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("egodex") / "egx"
    done = generate(out, "--format", "egodex")
    assert done.returncode == 0, done.stderr
    return out


def test_files_and_keys(egx):
    assert sorted(p.name for p in egx.iterdir()) == [
        "depth",
        "egoworld_world.json",
        "synthetic",
        "tabletop",
    ]
    assert sorted(p.name for p in (egx / "tabletop").iterdir()) == ["0.hdf5", "0.mp4"]
    with h5py.File(egx / "tabletop" / "0.hdf5", "r") as f:
        keys = set()
        f.visititems(lambda name, obj: keys.add(name) if isinstance(obj, h5py.Dataset) else None)
        joints = [*joint_names("right"), "rightForearm"]
        want = {"camera/intrinsic", "transforms/camera"}
        want |= {f"transforms/{j}" for j in joints} | {f"confidences/{j}" for j in joints}
        assert keys == want
        assert f["camera/intrinsic"].shape == (3, 3) and f["transforms/camera"].shape == (FRAMES, 4, 4)
        assert all(f[k].dtype == np.float32 for k in keys)
        assert f["confidences/rightHand"].shape == (FRAMES,)
        assert f.attrs["task"] == "tabletop" and "right hand" in f.attrs["llm_description"]
    desc = json.loads((egx / "egoworld_world.json").read_text())
    assert desc["layout"] == "egodex" and desc["options"] == {"format": "egodex"}


def test_poses_joints_and_depth_match_the_synthetic_episode(egx):
    syn = egx / "synthetic" / "episode_00000"
    cams = json.loads((syn / "gt" / "cameras.json").read_text())
    K, c2w = np.array(cams["K"]), np.array(cams["cam_to_world"])
    kp3, kp2 = np.load(syn / "keypoints_3d.npy"), np.load(syn / "keypoints_2d.npy")
    visible = np.load(syn / "keypoints_visible.npy")
    with h5py.File(egx / "tabletop" / "0.hdf5", "r") as f:
        K_e = f["camera/intrinsic"][()].astype(np.float64)
        cam = f["transforms/camera"][()].astype(np.float64)
        joints = np.stack([f[f"transforms/{j}"][()] for j in joint_names("right")], 1)  # [N, 21, 4, 4]
        conf = np.stack([f[f"confidences/{j}"][()] for j in joint_names("right")], 1)
    np.testing.assert_allclose(K_e, K, atol=1e-5)
    # the world turned z-up -> y-up: gravity (MuJoCo -z) is -y, heights become y
    np.testing.assert_allclose(cam[:, 1, 3], c2w[:, 2, 3], atol=1e-5)
    np.testing.assert_allclose(joints[..., 1, 3], kp3[..., 2], atol=1e-5)
    np.testing.assert_array_equal(conf, visible.astype(np.float32))
    # EgoDex's visualiser: camera-frame joints = inv(transforms/camera) @ joint, projected by OpenCV
    for t in range(FRAMES):
        p = (np.linalg.inv(cam[t]) @ joints[t])[:, :3, 3]  # [21, 3]
        uv, _ = cv2.projectPoints(p, np.zeros(3), np.zeros(3), K_e, np.zeros(5))
        np.testing.assert_allclose(uv[:, 0], kp2[t], atol=2e-3)
    depth = np.load(egx / "depth" / "tabletop" / "0.npy")
    np.testing.assert_array_equal(depth, np.load(syn / "gt" / "depth.npy"))


def test_video_decodes_to_the_rendered_frames(egx):
    from PIL import Image

    with av.open(str(egx / "tabletop" / "0.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 30
        frames = np.stack([fr.to_ndarray(format="rgb24") for fr in container.decode(stream)])
    pngs = sorted((egx / "synthetic" / "episode_00000" / "frames").glob("*.png"))
    truth = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in pngs])
    assert frames.shape == truth.shape == (FRAMES, SIZE, SIZE, 3)
    mae = np.abs(frames.astype(int) - truth.astype(int)).mean()
    assert mae < 10, mae  # MPEG-4 part 2 at q = 2, 4:2:0 chroma at 32 px: 4.2-8.0 on seeds 0-5


def test_same_request_is_a_no_op_and_another_is_refused(egx, tmp_path, capsys):
    before = (egx / "tabletop" / "0.hdf5").read_bytes()
    argv = ["worlds", "generate", "--task", "tabletop", "--episodes", "1", "--frames", str(FRAMES)]
    argv += ["--size", str(SIZE), "--seed", "5", "--out", str(egx), "--no-progress", "--format", "egodex"]
    assert main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main([*argv[:-2]]) == 2  # the native layout with the same seed is another dataset
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different dataset" in err
    assert (egx / "tabletop" / "0.hdf5").read_bytes() == before


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--task", "nav"], "--task tabletop"),
        (["--task", "tabletop", "--effector", "gripper"], "hand effector"),
        (["--task", "tabletop", "--format", "lerobot"], "invalid choice: 'lerobot'"),
    ],
)
def test_bad_requests(tmp_path, capsys, extra, needle):
    argv = ["worlds", "generate", "--episodes", "1", "--frames", "3", "--size", "16", "--no-progress"]
    argv += ["--out", str(tmp_path / "o"), "--format", "egodex", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err
    assert not list(tmp_path.iterdir())
