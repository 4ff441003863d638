"""`egoworld eval` end to end on two tiny folders, and its bad inputs (one stderr line, exit 2, no report)."""

import json
import shutil

import numpy as np
import pytest
from metrics_world import render, write_mp4

from egoworld.cli import main
from egoworld.metrics.videos import load_video, write_frame_folder

YAWS = np.radians(np.arange(18) * 4.0)  # turns away from the first view at frame 15


def _side(folder, name, world):
    np.savez(
        folder / f"{name}.npz",
        depth=world.depth.astype(np.float32),
        poses_c2w=world.c2w,
        intrinsics=world.intrinsics,
        instances=world.instances,
    )


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    for name, seed in (("clip_a", 0), ("clip_b", 3)):
        gt = render(YAWS, texture_seed=seed)
        drift = render(YAWS * 0.8, texture_seed=seed)  # the "model" under-turns by 20%
        write_frame_folder(gt.frames, gt_dir / name)
        _side(gt_dir, name, gt)
        write_mp4(drift.frames, pred_dir / f"{name}.mp4")
        _side(pred_dir, name, drift)
    return root, gt_dir, pred_dir


def _other_world(poses):
    """The same camera path in another world frame and unit (rigid rotation + shift, positions × 1.5)."""
    from scipy.spatial.transform import Rotation

    g = Rotation.from_euler("zyx", [50, 20, -30], degrees=True).as_matrix()
    out = np.einsum("ij,tjk->tik", np.block([[g, np.zeros((3, 1))], [np.zeros((1, 3)), 1]]), poses)
    out[:, :3, 3] = 1.5 * poses[:, :3, 3] @ g.T + np.array([2.0, -1.0, 0.5])
    return out


@pytest.fixture(scope="module")
def nav_world(tmp_path_factory):
    """`worlds generate --task nav` output (2 episodes, 12 frames, 32 px) and a perturbed copy of it."""
    from PIL import Image

    from egoworld.worlds.generate import WorldSpec, generate

    root = tmp_path_factory.mktemp("nav")
    gt_dir, pred_dir = root / "gt", root / "pred"
    # workers=2 renders in child processes: in this process, MuJoCo's EGL rendering followed by
    # the first import of torchvision (LPIPS below) segfaults
    generate(WorldSpec(task="nav", episodes=2, frames=12, size=32, workers=2), gt_dir, progress=False)
    shutil.copytree(gt_dir, pred_dir)
    rng = np.random.default_rng(0)
    for ep in sorted(pred_dir.glob("traj_*")):
        for jpg in ep.glob("*.jpg"):  # pixel noise
            img = np.asarray(Image.open(jpg)).astype(int) + rng.integers(-25, 26, size=(32, 32, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(jpg, quality=95)
        inst = np.load(ep / "gt/instances.npy")
        np.save(ep / "gt/instances.npy", np.roll(inst, 2, axis=2))  # structures 2 px off
        depth = np.load(ep / "gt/depth.npy")
        np.save(ep / "gt/depth.npy", depth * rng.uniform(0.8, 1.2, size=depth.shape).astype(np.float32))
        cams = json.loads((ep / "gt/cameras.json").read_text())
        cams["cam_to_world"] = _other_world(np.array(cams["cam_to_world"])).tolist()
        (ep / "gt/cameras.json").write_text(json.dumps(cams))
    return gt_dir, pred_dir


def test_eval_reads_worlds_nav_output(nav_world, tmp_path, capsys):
    gt_dir, pred_dir = nav_world
    args = ["--metrics", "psnr,ssim,scs,depth,cam", "--gt-tracks", "instances", "--pred-tracks", "instances"]
    assert _eval(gt_dir, gt_dir, tmp_path / "same", *args) == 0
    same = json.loads((tmp_path / "same" / "results.json").read_text())
    assert set(same["per_video"]) == {"traj_00000", "traj_00001"}  # data_splits/ is not a video
    mean = same["mean"]
    assert mean["psnr"]["2"] == "inf" and mean["scs"]["overall"] == 100.0
    assert mean["depth_abs_rel"]["overall"] == 0.0
    assert mean["cam_ate"]["overall"] < 1e-9 and mean["cam_rot_deg"]["overall"] < 1e-6
    for info in same["meta"]["videos"].values():
        assert info["scs_trim"] == "reprojection"  # --trim auto: GT depth, poses and K are there
        assert info["scs_objects"]  # static structures only: no ground, fences, walls, agent
        assert not {"ground", "floor", "ceiling"} & set(info["scs_objects"])
        assert not any(o.startswith(("wall_", "fence_")) for o in info["scs_objects"])
    assert same["n"]["psnr"]["16"] == 0 and same["n"]["psnr"]["8"] == 2  # 12 frames: no frame 16
    capsys.readouterr()

    assert _eval(gt_dir, pred_dir, tmp_path / "perturbed", *args) == 0
    data = json.loads((tmp_path / "perturbed" / "results.json").read_text())
    mean = data["mean"]
    assert 15 < mean["psnr"]["overall"] < 40
    assert 0 < mean["scs"]["overall"] < 100
    assert 0.02 < mean["depth_abs_rel"]["overall"] < 0.2
    # the predicted poses are the GT in another world frame and unit: Sim(3) alignment undoes it,
    # rotation included, although nav paths are planar (rank-2 positions)
    assert mean["cam_ate"]["overall"] < 1e-6 and mean["cam_rot_deg"]["overall"] < 1e-6
    assert "| scs ↑ |" in capsys.readouterr().out


def test_eval_reads_worlds_tabletop_output(tmp_path):
    from egoworld.worlds.generate import WorldSpec, generate

    gt_dir = tmp_path / "tabletop"
    generate(WorldSpec(task="tabletop", episodes=1, frames=6, size=32, workers=2), gt_dir, progress=False)
    out = tmp_path / "report"
    args = ["--metrics", "psnr,scs,depth,cam", "--gt-tracks", "instances", "--pred-tracks", "instances"]
    assert _eval(gt_dir, gt_dir, out, *args) == 0  # frames in episode_00000/frames/
    data = json.loads((out / "results.json").read_text())
    info = data["meta"]["videos"]["episode_00000"]
    assert info["frames"] == 6 and info["scs_objects"] == ["work_table"]  # not the hand, objects, floor
    assert data["mean"]["scs"]["overall"] == 100.0 and data["mean"]["cam_ate"]["overall"] < 1e-9


def _eval(gt_dir, pred_dir, out, *extra):
    return main(["eval", "--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(out), *extra])


def test_load_video_formats(folders):
    _, gt_dir, pred_dir = folders
    frames = load_video(gt_dir / "clip_a")
    assert frames.shape == (18, 72, 96, 3) and frames.dtype == np.uint8
    assert load_video(pred_dir / "clip_a.mp4").shape == frames.shape


def test_eval_end_to_end(folders, capsys):
    root, gt_dir, pred_dir = folders
    out = root / "report"
    code = _eval(
        gt_dir,
        pred_dir,
        out,
        "--metrics",
        "psnr,ssim,lpips,scs,depth,cam",
        "--horizons",
        "2,4,8,16",
        "--lpips-random",
        "--gt-tracks",
        "instances",
        "--pred-tracks",
        "instances",
        "--trim",
        "reprojection",
    )
    assert code == 0
    assert {p.name for p in out.iterdir()} == {
        "results.json",
        "results.csv",
        "results.md",
        "metrics_vs_horizon.png",
    }
    data = json.loads((out / "results.json").read_text())
    assert set(data["per_video"]) == {"clip_a", "clip_b"}
    scs = data["mean"]["scs"]
    assert 0 <= scs["8"] < scs["4"] < scs["2"] < 100  # drift grows with the horizon
    assert scs["16"] is None  # after the trim frame: undefined, written as null
    assert data["meta"]["videos"]["clip_a"]["scs_trim_at"] == 15
    assert data["mean"]["cam_ate"]["overall"] < 1e-6  # both turn in place: no translation error
    assert data["mean"]["cam_rot_deg"]["overall"] > 1.0
    assert "| scs ↑ |" in capsys.readouterr().out
    # identical videos: SCS 100, depth error 0
    same = root / "same_report"
    assert (
        _eval(
            gt_dir,
            gt_dir,
            same,
            "--metrics",
            "scs,depth",
            "--horizons",
            "2",
            "--gt-tracks",
            "instances",
            "--pred-tracks",
            "instances",
            "--trim",
            "flow",
        )
        == 0
    )
    mean = json.loads((same / "results.json").read_text())["mean"]
    assert mean["scs"]["overall"] == 100.0 and mean["depth_abs_rel"]["overall"] == 0.0


def _expect_error(capsys, code, *needles):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("egoworld eval: error:"), err
    for needle in needles:
        assert needle in err, err


def test_bad_inputs(folders, tmp_path, capsys):
    _, gt_dir, pred_dir = folders
    out = tmp_path / "report"
    # unmatched names
    extra = tmp_path / "pred_extra"
    shutil.copytree(pred_dir, extra)
    (extra / "clip_a.mp4").rename(extra / "clip_z.mp4")
    _expect_error(
        capsys, _eval(gt_dir, extra, out, "--metrics", "psnr"), "only in --pred ['clip_z']", "clip_a"
    )
    # different lengths
    short = tmp_path / "pred_short"
    short.mkdir()
    for name in ("clip_a", "clip_b"):
        write_frame_folder(load_video(gt_dir / name)[:6], short / name)
    _expect_error(capsys, _eval(gt_dir, short, out, "--metrics", "psnr"), "6 frames", "18")
    # different sizes that resizing cannot reconcile: another aspect ratio, a prediction larger than the GT
    square = tmp_path / "pred_square"
    square.mkdir()
    for name in ("clip_a", "clip_b"):
        write_frame_folder(load_video(gt_dir / name)[:, :48, :48], square / name)
    _expect_error(capsys, _eval(gt_dir, square, out, "--metrics", "psnr"), "48x48", "96x72", "aspect ratio")
    _expect_error(capsys, _eval(square, gt_dir, out, "--metrics", "psnr"), "96x72", "48x48")
    # missing annotation file, and an annotation without this video
    _expect_error(
        capsys,
        _eval(
            gt_dir,
            pred_dir,
            out,
            "--metrics",
            "scs",
            "--annotations",
            str(tmp_path / "a.json"),
            "--sam2-random",
        ),
        "annotation file not found",
    )
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"videos": {"clip_a": {"objects": [{"id": "x", "points": [[5, 5]]}]}}}))
    _expect_error(
        capsys,
        _eval(gt_dir, pred_dir, out, "--metrics", "scs", "--annotations", str(ann), "--sam2-random"),
        "no annotation for videos ['clip_b']",
    )
    # missing weights
    _expect_error(
        capsys,
        _eval(gt_dir, pred_dir, out, "--metrics", "lpips", "--alexnet", str(tmp_path / "alex.pth")),
        "AlexNet weights not found at",
        "alex.pth",
    )
    sam2 = ["--metrics", "scs", "--gt-tracks", "sam2"]  # auto would take the instance masks both have
    _expect_error(capsys, _eval(gt_dir, pred_dir, out, *sam2), "--sam2-checkpoint")
    _expect_error(
        capsys,
        _eval(gt_dir, pred_dir, out, *sam2, "--sam2-checkpoint", str(tmp_path / "sam2.pt")),
        "SAM 2 checkpoint not found",
        "sam2.pt",
    )
    _expect_error(capsys, _eval(gt_dir, pred_dir, out, "--metrics", "dreamsim"), "DreamSim weights")
    # unknown metric, bad horizons
    _expect_error(capsys, _eval(gt_dir, pred_dir, out, "--metrics", "psnr,fvd"), "fvd", "expected")
    _expect_error(capsys, _eval(gt_dir, pred_dir, out, "--horizons", "a,b"), "--horizons")
    _expect_error(capsys, _eval(gt_dir, pred_dir, out, "--horizons", "2,99999999999999999999"), "[1, 100000]")
    many = ",".join(str(h) for h in range(1, 100))
    _expect_error(capsys, _eval(gt_dir, pred_dir, out, "--horizons", many), "at most 64")
    # a corrupt side file: the file's name, not numpy's advice about pickles
    corrupt = tmp_path / "pred_corrupt"
    shutil.copytree(pred_dir, corrupt)
    (corrupt / "clip_a.npz").write_bytes(b"not a zip file at all")
    _expect_error(capsys, _eval(gt_dir, corrupt, out, "--metrics", "depth"), "clip_a.npz: not a valid .npz")
    # side intrinsics of the wrong shape
    bad_k = tmp_path / "gt_bad_k"
    shutil.copytree(gt_dir, bad_k)
    with np.load(bad_k / "clip_a.npz") as side:
        arrays = dict(side)
    np.savez(bad_k / "clip_a.npz", **{**arrays, "intrinsics": np.eye(4)})
    args = ["--metrics", "scs", "--gt-tracks", "instances", "--pred-tracks", "instances"]
    _expect_error(
        capsys, _eval(bad_k, pred_dir, out, *args), "clip_a: ground-truth intrinsics", "expected [3, 3]"
    )
    # gt/objects.json with an entry that is not an object
    objs = tmp_path / "gt_objs"
    shutil.copytree(gt_dir, objs)
    (objs / "clip_a" / "gt").mkdir()
    (objs / "clip_a" / "gt" / "objects.json").write_text(json.dumps({"objects": {"1": "house"}}))
    _expect_error(capsys, _eval(objs, pred_dir, out, *args), "objects.json: objects['1'] must be an object")
    assert not out.exists()  # nothing half-written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]


def test_refuses_to_replace_a_foreign_folder(folders, tmp_path, capsys):
    _, gt_dir, pred_dir = folders
    (tmp_path / "keep.txt").write_text("mine")
    _expect_error(
        capsys, _eval(gt_dir, pred_dir, tmp_path, "--metrics", "psnr"), "is not a folder holding results.json"
    )
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_trim_auto_needs_all_of_depth_poses_and_intrinsics():
    from argparse import Namespace

    from egoworld.commands.eval import _trim_method

    auto = Namespace(trim="auto")
    full = {"depth": 0, "poses_c2w": 0, "intrinsics": 0}
    assert _trim_method(auto, full) == "reprojection"
    assert _trim_method(auto, {"depth": 0, "poses_c2w": 0}) == "flow"  # no K: the FOV guess is not GT
    assert _trim_method(Namespace(trim="flow"), full) == "flow"


def test_defaults_need_no_weights_and_help_says_them(folders, tmp_path, capsys):
    """The plain command runs without any downloaded weights: psnr, ssim and (masks on both sides) scs."""
    _, gt_dir, pred_dir = folders
    assert _eval(gt_dir, pred_dir, tmp_path / "r") == 0
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["meta"]["metrics"] == ["psnr", "ssim", "scs"] and not data["meta"]["notes"]
    assert data["meta"]["videos"]["clip_a"]["scs_tracks"] == {"gt": "instances", "pred": "instances"}
    # without instance masks in the prediction, SCS would need SAM 2 weights: left out, and said so
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("clip_a", "clip_b"):
        shutil.copy(pred_dir / f"{name}.mp4", bare / f"{name}.mp4")
    capsys.readouterr()
    assert _eval(gt_dir, bare, tmp_path / "r2") == 0
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "r2" / "results.json").read_text())
    assert data["meta"]["metrics"] == ["psnr", "ssim"]
    assert "scs left out of the default metrics" in printed and "--sam2-checkpoint" in printed
    assert "Note: scs left out" in (tmp_path / "r2" / "results.md").read_text()


def test_lpips_without_weights_says_which_file_and_where(folders, tmp_path, monkeypatch, capsys):
    """No --alexnet: the loader looks in torch hub's cache and names the file, its URL and that path."""
    _, gt_dir, pred_dir = folders
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    _expect_error(
        capsys,
        _eval(gt_dir, pred_dir, tmp_path / "r", "--metrics", "psnr,lpips"),
        "alexnet-owt-7be5be79.pth), not found at " + str(tmp_path / "torch-home" / "hub" / "checkpoints"),
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "--alexnet FILE",
    )
    # a file where the loader looks (or given with --alexnet) that is not AlexNet: one line naming it
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes(b"truncated download")
    _expect_error(
        capsys,
        _eval(gt_dir, pred_dir, tmp_path / "r", "--metrics", "lpips"),
        "alexnet-owt-7be5be79.pth: cannot read as a torch state dict",
    )
    import torch

    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    _expect_error(
        capsys,
        _eval(
            gt_dir, pred_dir, tmp_path / "r", "--metrics", "lpips", "--alexnet", str(tmp_path / "wrong.pth")
        ),
        "wrong.pth: features.0.weight has shape (3,), expected (64, 3, 11, 11)",
    )
    _expect_error(
        capsys,
        _eval(gt_dir, pred_dir, tmp_path / "r", "--metrics", "dreamsim"),
        "dino_vitb16_pretrain.pth",
        "--dreamsim-cache DIR",
    )
    assert not (tmp_path / "r").exists()


def test_larger_ground_truth_is_downsampled_and_the_report_says_so(folders, tmp_path, capsys):
    """A 32 px model's prediction against a 64 px world: the GT (frames, depth, instances, K) is brought
    to the prediction's size."""
    import cv2

    _, gt_dir, _ = folders
    half = tmp_path / "pred_half"
    half.mkdir()

    def shrink(frames, interpolation):
        return np.stack([cv2.resize(f, (48, 36), interpolation=interpolation) for f in frames])

    for name in ("clip_a", "clip_b"):
        write_frame_folder(shrink(load_video(gt_dir / name), cv2.INTER_AREA), half / name)  # [18, 36, 48, 3]
        with np.load(gt_dir / f"{name}.npz") as side:
            depth = shrink(side["depth"].astype(np.float32), cv2.INTER_NEAREST)
            instances = shrink(side["instances"].astype(np.int32), cv2.INTER_NEAREST)
        np.savez(half / f"{name}.npz", depth=depth, instances=instances)
    args = ["--metrics", "psnr,scs,depth", "--horizons", "2,4"]
    assert _eval(gt_dir, half, tmp_path / "r", *args) == 0
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    info = data["meta"]["videos"]["clip_a"]
    assert info["gt_resized_from"] == [96, 72] and info["size"] == [48, 36]
    assert data["mean"]["psnr"]["2"] == "inf"  # the same area downsampling: identical frames
    assert data["mean"]["scs"]["overall"] == 100.0 and data["mean"]["depth_abs_rel"]["overall"] == 0.0
    assert (
        info["scs_trim"] == "reprojection" and abs(info["scs_trim_at"] - 15) <= 1
    )  # K scaled with the frames
    assert "area-downsampled to the prediction's size (48x36)" in printed
    assert "area-downsampled" in (tmp_path / "r" / "results.md").read_text()


def test_one_video_against_its_ground_truth(folders, tmp_path):
    """--pred and --gt may be single videos (files or frame folders), or one video and a folder."""
    _, gt_dir, pred_dir = folders
    assert _eval(gt_dir / "clip_a", pred_dir / "clip_a.mp4", tmp_path / "r1", "--metrics", "psnr,ssim") == 0
    one = json.loads((tmp_path / "r1" / "results.json").read_text())
    assert list(one["per_video"]) == ["clip_a"]
    assert _eval(gt_dir, pred_dir / "clip_b.mp4", tmp_path / "r2", "--metrics", "psnr") == 0
    assert list(json.loads((tmp_path / "r2" / "results.json").read_text())["per_video"]) == ["clip_b"]


def test_report_folder_never_replaces_an_input(folders, tmp_path, capsys):
    _, gt_dir, pred_dir = folders
    report = tmp_path / "report"
    assert _eval(gt_dir, pred_dir, report, "--metrics", "psnr") == 0
    shutil.copytree(pred_dir, report / "pred")  # a user keeps predictions inside an old report
    _expect_error(
        capsys, _eval(gt_dir, report / "pred", report, "--metrics", "psnr"), "holds the input --pred"
    )
    assert (report / "pred" / "clip_a.mp4").is_file()


def test_scs_refuses_nan_and_non_boolean_masks():
    from egoworld.metrics import structural_consistency_score

    gt = np.zeros((2, 1, 4, 4), bool)
    gt[:, 0, :2] = True
    nan = np.full(gt.shape, np.nan)
    with pytest.raises(ValueError, match="SCS pred masks .*float64.* hold nan; expected boolean masks"):
        structural_consistency_score(nan, gt)  # astype(bool) would make every pixel "inside"
    with pytest.raises(ValueError, match="hold 255"):
        structural_consistency_score(gt.astype(np.uint8) * 255, gt)
    with pytest.raises(ValueError, match="gt masks are <U1"):
        structural_consistency_score(gt, np.full(gt.shape, "x"))
    assert structural_consistency_score(gt.astype(np.uint8), gt.astype(np.float32)) == 100.0
