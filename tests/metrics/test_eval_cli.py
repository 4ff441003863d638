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
    # different sizes
    small = tmp_path / "pred_small"
    small.mkdir()
    for name in ("clip_a", "clip_b"):
        write_frame_folder(load_video(gt_dir / name)[:, :48, :64], small / name)
    _expect_error(capsys, _eval(gt_dir, small, out, "--metrics", "psnr"), "64x48", "96x72")
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
    _expect_error(capsys, _eval(gt_dir, pred_dir, out, "--metrics", "scs"), "--sam2-checkpoint")
    _expect_error(
        capsys,
        _eval(gt_dir, pred_dir, out, "--metrics", "scs", "--sam2-checkpoint", str(tmp_path / "sam2.pt")),
        "SAM 2 checkpoint not found",
        "sam2.pt",
    )
    _expect_error(capsys, _eval(gt_dir, pred_dir, out, "--metrics", "dreamsim"), "DreamSim weights")
    # unknown metric, bad horizons
    _expect_error(capsys, _eval(gt_dir, pred_dir, out, "--metrics", "psnr,fvd"), "fvd", "expected")
    _expect_error(capsys, _eval(gt_dir, pred_dir, out, "--horizons", "a,b"), "--horizons")
    assert not out.exists()  # nothing half-written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]


def test_refuses_to_replace_a_foreign_folder(folders, tmp_path, capsys):
    _, gt_dir, pred_dir = folders
    (tmp_path / "keep.txt").write_text("mine")
    _expect_error(
        capsys, _eval(gt_dir, pred_dir, tmp_path, "--metrics", "psnr"), "is not a folder holding results.json"
    )
    assert (tmp_path / "keep.txt").read_text() == "mine"
