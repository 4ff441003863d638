"""`egoworld sim prepare` on the plain video layout (<name>.mp4 + <name>.npz: K, hands in camera
coordinates, optional hand_confidence and cam_to_world), on synthetic tabletop episodes exported by
`egoworld worlds generate --format plain` where the ground truth is known.

1. Supplied poses: the prepared clips equal what the EgoDex layout of the same episode gives
   (its forearm joint removed, as the plain layout has none): target, scene, mask, skeleton, K and
   poses identical; hand keypoints within 1e-7 m (float32 rounding of camera -> world).
2. No poses (`--no-poses`): Open3D RGB-D odometry over the ground-truth depth (128 px source
   video, clips at 32 px). Against the renderer's camera poses (relative to the first frame),
   measured over the 2 clips of each of seeds 0-5, asserted with margin:
   - camera position error: max 1.8-10.6 mm per clip (travel up to 39 mm); asserted <= 16 mm;
   - camera rotation error: max 0.29-1.18 degrees; asserted <= 1.8 degrees;
   - the estimate beats assuming a still camera (RMS position error < RMS travel) where the
     camera travels more than 1 cm;
   against the same clips prepared with the true poses supplied in the same world (the first
   camera's frame, so the TSDF voxel grid sits in the same place):
   - unobserved-mask disagreement: 0.2-3.6 % of pixels; asserted <= 6 %;
   - scene colour MAE where both cover: 0.8-4.3 levels; asserted <= 7;
   - target and skeleton identical (the skeleton is drawn from camera-frame joints either way).
3. The same without poses with a (tiny, random) local Depth Anything folder: runs, poses rigid.
4. Bad input: one line on stderr, exit 2, nothing written.
"""

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
from tests.tiny_depth_anything import save_tiny_depth_anything

T, SIZE, FRAMES, ODOMETRY_SOURCE = 9, 32, 13, 128
SEED = os.environ.get("EGOWORLD_PREPARE_SEED", "2")  # the tolerances were measured on seeds 0-5
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def generate(out: Path, fmt: str, size: int, *extra: str) -> Path:
    """One 13-frame tabletop episode exported with `--format fmt` (in a child process: MuJoCo)."""
    argv = ["worlds", "generate", "--task", "tabletop", "--format", fmt, "--episodes", "1"]
    argv += ["--frames", str(FRAMES), "--size", str(size), "--seed", SEED, "--out", str(out), "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-m", "egoworld", *argv, *extra], capture_output=True, text=True, env=ENV
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("plain")


@pytest.fixture(scope="module")
def plain32(worlds) -> Path:
    return generate(worlds / "plain32", "plain", SIZE)


@pytest.fixture(scope="module")
def egx32(worlds) -> Path:
    return generate(worlds / "egx32", "egodex", SIZE)


def prepare_argv(src, out, *extra) -> list[str]:
    argv = ["sim", "prepare", str(src), "--out", str(out), "--size", str(SIZE), str(SIZE)]
    return [*argv, "--frames", str(T), "--stride", "4", "--no-progress", *extra]


def test_export_writes_the_plain_keys(plain32):
    assert sorted(p.name for p in (plain32 / "tabletop").iterdir()) == ["0.mp4", "0.npz"]
    with np.load(plain32 / "tabletop" / "0.npz", allow_pickle=False) as z:
        shapes = {k: z[k].shape for k in z.files}
        hands, conf = z["hands"], z["hand_confidence"]
    assert shapes == {
        "K": (3, 3),
        "hands": (FRAMES, 2, 21, 3),
        "hand_confidence": (FRAMES, 2, 21),
        "cam_to_world": (FRAMES, 4, 4),
        "prompt": (),  # the episode's description (tests/sim/test_episode_prompts.py)
    }
    assert np.isnan(hands[:, 0]).all() and np.isfinite(hands[:, 1]).all()  # the synthetic hand is right
    assert (hands[:, 1, :, 2] > 0).all()  # camera coordinates: in front of the camera
    assert set(np.unique(conf[:, 1])) <= {0.0, 1.0} and not conf[:, 0].any()
    desc = json.loads((plain32 / "egoworld_world.json").read_text())
    assert desc["layout"] == "plain" and desc["options"] == {"format": "plain", "poses": True}


def test_supplied_poses_give_the_egodex_clips(plain32, egx32, tmp_path):
    from egoworld.sim.prepared import load_clips, read_manifest

    egx = tmp_path / "egx"  # the EgoDex files without the forearm joint, which the plain layout lacks
    shutil.copytree(egx32 / "tabletop", egx / "tabletop")
    with h5py.File(egx / "tabletop" / "0.hdf5", "a") as f:
        del f["transforms/rightForearm"], f["confidences/rightForearm"]
    assert main(prepare_argv(plain32, tmp_path / "plain", "--depth", str(plain32 / "depth"))) == 0
    assert main(prepare_argv(egx, tmp_path / "ego", "--depth", str(egx32 / "depth"))) == 0
    meta = read_manifest(tmp_path / "plain")
    assert (meta["layout"], meta["poses"], meta["depth"]) == ("plain", "supplied", "supplied")
    assert meta["fps"] == 30  # the video's rate
    assert read_manifest(tmp_path / "ego")["layout"] == "egodex"
    mine, theirs = load_clips(tmp_path / "plain"), load_clips(tmp_path / "ego")
    assert len(mine) == len(theirs) == 2
    for a, b in zip(mine, theirs):
        for key in ("target", "scene", "mask", "skeleton", "K", "cam_to_world"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        np.testing.assert_allclose(a["hand_keypoints"], b["hand_keypoints"], atol=1e-7)


def _rotation_deg(R: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)))


def _relative(c2w: np.ndarray) -> np.ndarray:
    """Poses [N, 4, 4] re-expressed in the frame of the first camera."""
    from egoworld.sim.camera import invert_pose

    return invert_pose(c2w[0]) @ c2w


def _true_poses(world: Path) -> np.ndarray:
    """The renderer's camera poses [N, 4, 4] (z-up world) relative to the first camera."""
    cams = json.loads((world / "synthetic" / "episode_00000" / "gt" / "cameras.json").read_text())
    return _relative(np.asarray(cams["cam_to_world"], dtype=np.float64))


def _pose_errors(got: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position errors [T] (metres) and rotation errors [T] (degrees) of poses `got` against `want`."""
    position = np.linalg.norm(got[:, :3, 3] - want[:, :3, 3], axis=-1)
    return position, _rotation_deg(np.swapaxes(got[:, :3, :3], -1, -2) @ want[:, :3, :3])


@pytest.fixture(scope="module")
def plain128_np(worlds) -> Path:
    """The 128 px episode in the plain layout without cam_to_world (`--no-poses`)."""
    return generate(worlds / "plain128_np", "plain", ODOMETRY_SOURCE, "--no-poses")


@pytest.fixture(scope="module")
def estimated(worlds, plain128_np, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(world with poses, clips prepared without poses, clips with the true poses in the first
    camera's frame), from a 128 px source at 32 px."""
    with_poses, no_poses = generate(worlds / "plain128", "plain", ODOMETRY_SOURCE), plain128_np
    out = tmp_path_factory.mktemp("estimated")
    ref = out / "ref_src" / "tabletop"  # the supplied poses re-expressed as the odometry's world
    ref.mkdir(parents=True)
    shutil.copy(with_poses / "tabletop" / "0.mp4", ref / "0.mp4")
    with np.load(with_poses / "tabletop" / "0.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["cam_to_world"] = _relative(arrays["cam_to_world"])
    np.savez(ref / "0.npz", **arrays)
    depth = str(with_poses / "depth")
    assert main(prepare_argv(no_poses, out / "est", "--depth", str(no_poses / "depth"))) == 0
    assert main(prepare_argv(out / "ref_src", out / "ref", "--depth", depth)) == 0
    return with_poses, out / "est", out / "ref"


def test_estimated_poses_follow_the_true_camera(estimated):
    from egoworld.sim.prepared import load_clips, read_manifest

    world, est, _ = estimated
    meta = read_manifest(est)
    assert meta["layout"] == "plain" and meta["poses"] == "estimated (Open3D RGB-D odometry)"
    truth = _true_poses(world)
    for clip, info in zip(load_clips(est), meta["clips"]):
        s = info["start"]
        want = truth[s : s + T]
        position, rotation = _pose_errors(clip["cam_to_world"], want)
        travel = np.linalg.norm(want[:, :3, 3], axis=-1)
        rms, still = np.sqrt((position**2).mean()), np.sqrt((travel**2).mean())
        print(
            f"seed {SEED} start {s}: position max {1e3 * position.max():.2f} mm (RMS {1e3 * rms:.2f}, "
            f"travel RMS {1e3 * still:.2f}), rotation max {rotation.max():.3f} deg"
        )  # pytest -s
        assert position.max() <= 0.016 and rotation.max() <= 1.8
        if travel.max() > 0.01:
            assert rms < still  # better than assuming the camera stood still


def test_keyframe_windows_chain(plain128_np, tmp_path):
    """A keyframe every 4 frames: three windows chained over the 13 frames (errors add up from one
    window to the next: measured max 2.3-33.4 mm and 0.36-1.94 degrees on seeds 0-5)."""
    from egoworld.sim.prepare import PrepareConfig, prepare_videos
    from egoworld.sim.prepared import load_clips

    config = PrepareConfig(size=(SIZE, SIZE), frames=T, stride=4, odometry_keyframe_every=4)
    meta = prepare_videos(plain128_np, tmp_path / "prep", config, depth_dir=plain128_np / "depth")
    assert meta["odometry"]["keyframe_every"] == 4
    truth = _true_poses(plain128_np)
    for clip, info in zip(load_clips(tmp_path / "prep"), meta["clips"]):
        position, rotation = _pose_errors(clip["cam_to_world"], truth[info["start"] : info["start"] + T])
        print(f"seed {SEED} every 4: position max {1e3 * position.max():.2f} mm, {rotation.max():.3f} deg")
        assert position.max() <= 0.045 and rotation.max() <= 2.6


def test_estimated_poses_render_close_to_the_true_ones(estimated):
    from egoworld.sim.prepared import load_clips

    _, est, ref = estimated
    for a, b in zip(load_clips(est), load_clips(ref)):
        np.testing.assert_array_equal(a["target"], b["target"])
        np.testing.assert_array_equal(a["skeleton"], b["skeleton"])
        both = ~a["mask"] & ~b["mask"]
        disagree = (a["mask"] != b["mask"]).mean()
        colour = np.abs(a["scene"][both].astype(int) - b["scene"][both]).mean()
        print(f"seed {SEED}: mask disagreement {disagree:.4f}, colour MAE {colour:.2f}")  # pytest -s
        assert disagree <= 0.06 and colour <= 7.0


def test_no_poses_with_a_local_depth_anything_folder(plain128_np, tmp_path, capsys):
    import torch

    from egoworld.sim.camera import validate_poses
    from egoworld.sim.prepared import load_clips, read_manifest

    torch.manual_seed(0)  # random weights: the same ones whichever tests ran before
    save_tiny_depth_anything(tmp_path / "da")
    out = tmp_path / "prep"
    assert main(prepare_argv(plain128_np, out, "--depth-model", str(tmp_path / "da"))) == 0
    meta = read_manifest(out)
    assert meta["poses"].startswith("estimated") and meta["depth"].startswith("estimated (disparity")
    for clip in load_clips(out):
        validate_poses(clip["cam_to_world"])
    capsys.readouterr()
    assert main(["sim", "prepare", "--check", str(out)]) == 0
    out_text = capsys.readouterr().out
    assert "layout: plain" in out_text and "poses: estimated (Open3D RGB-D odometry)" in out_text


# --------------------------------------------------------------------------- bad input


def _npz(path: Path, **changes) -> None:
    """Rewrite the npz at `path` with `changes` (None removes a key)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value(arrays) if callable(value) else value
    np.savez(path, **arrays)


def _mixed(src: Path, egx32: Path) -> None:
    for suffix in (".mp4", ".hdf5"):
        shutil.copy(egx32 / "tabletop" / f"0{suffix}", src / "tabletop" / f"1{suffix}")


BAD = [
    pytest.param(
        lambda p: _npz(p, hands=lambda a: a["hands"][:, :, :20]),
        f"hands is float64 [{FRAMES}, 2, 20, 3]; expected float [N, 2, 21, 3]",
        id="20-joints",
    ),
    pytest.param(
        lambda p: _npz(p, hands=lambda a: a["hands"].reshape(FRAMES, 42, 3)),
        f"hands is float64 [{FRAMES}, 42, 3]; expected float [N, 2, 21, 3]",
        id="42-joints-flat",
    ),
    pytest.param(lambda p: _npz(p, K=None), "missing key 'K'", id="no-K"),
    pytest.param(
        lambda p: _npz(
            p,
            hands=lambda a: a["hands"][:-1],
            hand_confidence=lambda a: a["hand_confidence"][:-1],
            cam_to_world=lambda a: a["cam_to_world"][:-1],
        ),
        f"hands has {FRAMES - 1} frames; expected {FRAMES}, one per frame of",
        id="one-frame-short",
    ),
    pytest.param(
        lambda p: _npz(p, cam_to_world=lambda a: a["cam_to_world"][:-1]),
        f"cam_to_world is float64 [{FRAMES - 1}, 4, 4]; expected float [{FRAMES}, 4, 4]",
        id="poses-short",
    ),
    pytest.param(
        lambda p: _npz(p, K=lambda a: np.where(np.eye(3) > 0, np.inf, a["K"])),
        "K holds non-finite values",
        id="K-inf",
    ),
    pytest.param(
        lambda p: _npz(p, hand_confidence=lambda a: 2 * a["hand_confidence"]),
        "hand_confidence holds values outside [0, 1]",
        id="confidence-2",
    ),
    pytest.param(
        lambda p: _npz(p, hands=lambda a: -a["hands"]),
        "have z > 0; expected hands in each frame's camera coordinates",
        id="hands-behind",
    ),
    pytest.param(
        lambda p: _npz(p, K=np.array(["a", "b"], dtype=object)), "holds Python objects", id="pickle"
    ),
    pytest.param(lambda p: p.unlink(), "0.mp4 has no poses: expected", id="no-npz"),
]


@pytest.mark.parametrize("damage, needle", BAD)
def test_bad_plain_episodes_are_one_line_and_write_nothing(plain32, tmp_path, capsys, damage, needle):
    src = tmp_path / "src"
    shutil.copytree(plain32 / "tabletop", src / "tabletop")
    damage(src / "tabletop" / "0.npz")
    assert main(prepare_argv(src, tmp_path / "out", "--depth", str(plain32 / "depth"))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output, no temporary folder


@pytest.mark.parametrize(
    "layout, needle",
    [
        ("auto", "mixes layouts"),
        ("plain", "1.mp4 has no hands: expected"),
        ("egodex", "0.mp4 has no poses: expected"),
    ],
)
def test_a_folder_mixing_layouts(plain32, egx32, tmp_path, capsys, layout, needle):
    src = tmp_path / "src"
    shutil.copytree(plain32 / "tabletop", src / "tabletop")
    _mixed(src, egx32)
    argv = prepare_argv(src, tmp_path / "out", "--depth", str(plain32 / "depth"), "--layout", layout)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_no_poses_is_for_the_plain_format(tmp_path, capsys):
    argv = ["worlds", "generate", "--task", "tabletop", "--format", "egodex", "--no-poses"]
    assert main([*argv, "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--no-poses applies to --format plain" in err, err
    assert not (tmp_path / "w").exists()
