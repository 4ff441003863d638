"""Hands estimated from recorded video (`egoworld.sim.hand_estimation`, `egoworld sim estimate-hands`).

1. Lifting is exact: joints projected with K onto depth maps that hold their depth around their
   pixel are recovered to float rounding (to the documented 1 cm along the ray with the default
   surface offset), with up to 12 of the 25 window pixels wrong (the median); the NaN rules.
2. Ground-truth 2-D keypoints and ground-truth depth of the synthetic tabletop hand (128 px): the
   lifted joints' median error, measured on seed 2: 22.1 mm without the surface offset, 13.6 mm
   with it (the visible skin lies 1-2 cm in front of a finger joint here; curled fingers under
   the back of the hand 8-13 cm, which no offset fixes).
3. The transformers path with a tiny random `VitPoseForPoseEstimation` (133 keypoints, saved with
   save_pretrained): the same keypoints as transformers' own documented calls, shapes,
   confidences in [0, 1], and every kept keypoint lifted at the depth of its pixel (the positions
   of a random model mean nothing, so no accuracy is asserted). ViTPose++ (MoE) gets dataset_index 5.
4. The CLI on a `worlds generate --format plain --no-hands` export with its ground-truth depth:
   hands written, other keys unchanged, `sim prepare` accepts the result; --overwrite; bad input
   is one line, exit 2, every npz byte-identical.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from egoworld.cli import main

FRAMES, SIZE, SEED = 9, 64, "2"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def generate(out: Path, size: int, *extra: str) -> Path:
    """One tabletop episode in the plain layout (in a child process: MuJoCo)."""
    argv = ["worlds", "generate", "--task", "tabletop", "--format", "plain", "--episodes", "1"]
    argv += ["--frames", str(FRAMES), "--size", str(size), "--seed", SEED, "--out", str(out), "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-m", "egoworld", *argv, *extra], capture_output=True, text=True, env=ENV
    )
    assert done.returncode == 0, done.stderr
    return out


def save_tiny_vitpose(folder: Path, num_labels: int = 133, num_experts: int = 1, seed: int = 0) -> Path:
    """A randomly initialised ViTPose (tiny ViT backbone, simple decoder) + its image processor."""
    import torch
    from transformers import (
        VitPoseBackboneConfig,
        VitPoseConfig,
        VitPoseForPoseEstimation,
        VitPoseImageProcessor,
    )

    torch.manual_seed(seed)
    backbone = VitPoseBackboneConfig(
        image_size=[64, 48],
        patch_size=[16, 16],
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        num_experts=num_experts,
        part_features=8,
        out_indices=[2],
    )
    config = VitPoseConfig(backbone_config=backbone, num_labels=num_labels)
    VitPoseForPoseEstimation(config).save_pretrained(folder)
    VitPoseImageProcessor(size={"height": 64, "width": 48}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    from tests.tiny_depth_anything import save_tiny_depth_anything

    root = tmp_path_factory.mktemp("models")
    save_tiny_vitpose(root / "pose")
    save_tiny_vitpose(root / "pose17", num_labels=17)
    save_tiny_vitpose(root / "pose_moe", num_experts=6)
    save_tiny_depth_anything(root / "da_relative")
    save_tiny_depth_anything(root / "da_metric", depth_estimation_type="metric", max_depth=2)
    return root


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> Path:
    """`no_hands`: the export without hands; `hands`: the same world with them; `hands128`: 128 px."""
    root = tmp_path_factory.mktemp("worlds")
    generate(root / "no_hands", SIZE, "--no-hands")
    generate(root / "hands", SIZE)
    return root


# --------------------------------------------------------------------------- lifting


def _lift_case(n=2, window=5, seed=0):
    """Joints on a pixel grid (7 px apart, sub-pixel offsets) at random depths, and depth maps
    holding each joint's z in its window with 12 of the 25 pixels wrong; returns
    (joints [n, 2, 21, 3], uv [n, 2, 21, 2], depth [n, H, W], K)."""
    from egoworld.sim.camera import intrinsics

    rng = np.random.default_rng(seed)
    H, W = 44, 7 * 21 + 8
    K = intrinsics(120.0, 110.0, W / 2 - 3.3, H / 2 + 1.7)
    uv = np.zeros((n, 2, 21, 2))
    uv[..., 0] = 4 + 7 * np.arange(21) + rng.uniform(-0.45, 0.45, (n, 2, 21))
    uv[..., 1] = np.array([12.0, 30.0])[None, :, None] + rng.uniform(-0.45, 0.45, (n, 2, 21))
    z = rng.uniform(0.3, 0.9, (n, 2, 21))
    rays = np.concatenate([uv, np.ones((n, 2, 21, 1))], -1) @ np.linalg.inv(K).T
    joints = z[..., None] * rays
    depth = np.full((n, H, W), 2.5)
    r = window // 2
    for f in range(n):
        for a in range(2):
            for j in range(21):
                u, v = np.rint(uv[f, a, j]).astype(int)
                block = np.full(window * window, z[f, a, j])
                wrong = rng.choice(window * window, (window * window - 1) // 2, replace=False)
                block[wrong] = rng.choice([0.0, np.nan, 2.5, 0.01], len(wrong))  # unknown, far, near
                depth[f, v - r : v + r + 1, u - r : u + r + 1] = block.reshape(window, window)
    return joints, uv, depth, K


def test_lifting_recovers_projected_joints():
    from egoworld.sim.hand_estimation import SURFACE_OFFSET, lift_keypoints

    joints, uv, depth, K = _lift_case()
    scores = np.full(uv.shape[:-1], 0.9)
    hands, conf = lift_keypoints(uv, scores, depth, K, surface_offset=0.0)
    np.testing.assert_allclose(hands, joints, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(conf, 0.9)
    hands, _ = lift_keypoints(uv, scores, depth, K)  # the default 1 cm behind the visible skin
    shift = hands - joints
    np.testing.assert_allclose(np.linalg.norm(shift, axis=-1), SURFACE_OFFSET, atol=1e-12)
    np.testing.assert_allclose(np.cross(shift, joints), 0.0, atol=1e-12)  # along the viewing ray
    assert (shift[..., 2] > 0).all()  # away from the camera


def test_lifting_nan_rules():
    from egoworld.sim.hand_estimation import MIN_HAND_JOINTS, lift_keypoints

    joints, uv, depth, K = _lift_case(n=1)
    scores = np.full(uv.shape[:-1], 0.9)
    scores[0, 1, 3] = 0.29  # below min_score 0.3
    scores[0, 1, 4] = 1.7  # a heatmap peak over 1: confidence 1
    scores[0, 1, 5] = np.nan
    uv = uv.copy()
    uv[0, 1, 6] = [-3.0, 10.0]  # outside the image
    uv[0, 1, 7] = [10.0, depth.shape[1] - 0.4]  # rounds to the row below the last
    u, v = np.rint(uv[0, 1, 8]).astype(int)
    depth[0, v - 2 : v + 3, u - 2 : u + 3] = 0.0  # no depth in its window
    scores[0, 0, MIN_HAND_JOINTS - 1 :] = 0.0  # the left hand keeps MIN_HAND_JOINTS - 1 joints: dropped
    hands, conf = lift_keypoints(uv, scores, depth, K, min_score=0.3, surface_offset=0.0)
    assert np.isnan(hands[0, 0]).all() and not conf[0, 0].any()
    lost = [3, 5, 6, 7, 8]
    assert np.isnan(hands[0, 1, lost]).all() and not conf[0, 1, lost].any()
    kept = [j for j in range(21) if j not in lost]
    np.testing.assert_allclose(hands[0, 1, kept], joints[0, 1, kept], atol=1e-12)
    assert conf[0, 1, 4] == 1.0 and (conf[0, 1, kept] > 0).all()
    scores[0, 0] = 0.9  # MIN_HAND_JOINTS known: kept
    scores[0, 0, MIN_HAND_JOINTS:] = 0.0
    hands, _ = lift_keypoints(uv, scores, depth, K, min_score=0.3)
    assert np.isfinite(hands[0, 0, :MIN_HAND_JOINTS]).all() and np.isnan(hands[0, 0, MIN_HAND_JOINTS:]).all()


def test_lifting_refuses_mismatched_shapes():
    from egoworld.sim.hand_estimation import lift_keypoints

    _, uv, depth, K = _lift_case(n=2)
    with pytest.raises(ValueError, match=r"expected \[N, 2, 21, 2\], \[N, 2, 21\] and \[N, H, W\]"):
        lift_keypoints(uv[:1], np.ones((1, 2, 21)), depth, K)
    with pytest.raises(ValueError, match="window=4; expected an odd number"):
        lift_keypoints(uv, np.ones((2, 2, 21)), depth, K, window=4)


def test_ground_truth_keypoints_on_the_synthetic_hand(worlds):
    """The synthetic hand's true joints projected, lifted with the true depth (128 px)."""
    from egoworld.sim.camera import project
    from egoworld.sim.hand_estimation import lift_keypoints

    world = generate(worlds / "hands128", 128)
    with np.load(world / "tabletop" / "0.npz", allow_pickle=False) as z:
        joints, visible, K = z["hands"], z["hand_confidence"] > 0.5, z["K"]
    depth = np.load(world / "depth" / "tabletop" / "0.npy")
    uv, _ = project(joints, K)
    scores = np.where(visible, 1.0, 0.0)
    errors = {}
    for offset in (0.0, 0.01):
        hands, _ = lift_keypoints(uv, scores, depth, K, surface_offset=offset)
        err = np.linalg.norm(hands - joints, axis=-1)[visible]
        assert np.isfinite(err).all()
        errors[offset] = float(np.median(err))
    print(f"median error: {1e3 * errors[0.0]:.1f} mm without the offset, {1e3 * errors[0.01]:.1f} with")
    assert errors[0.01] < errors[0.0] and errors[0.01] <= 0.02


# --------------------------------------------------------------------------- the pose model


def _frames(world: Path) -> np.ndarray:
    from egoworld.data.video import VideoReader

    with VideoReader(world / "tabletop" / "0.mp4") as reader:
        return reader.read(np.arange(FRAMES))  # [N, H, W, 3]


def test_tiny_vitpose_keypoints_are_the_processors(models, worlds):
    import torch
    from transformers import AutoImageProcessor, AutoModelForPoseEstimation

    from egoworld.sim.hand_estimation import WholeBodyPoseModel

    frames = _frames(worlds / "no_hands")
    pose = WholeBodyPoseModel(models / "pose", batch_size=FRAMES)  # one batch, as below (float rounding)
    uv, scores = pose(frames)
    assert uv.shape == (FRAMES, 133, 2) and scores.shape == (FRAMES, 133)
    processor = AutoImageProcessor.from_pretrained(models / "pose")  # transformers' documented path
    model = AutoModelForPoseEstimation.from_pretrained(models / "pose").eval()
    boxes = [[[0.0, 0.0, float(SIZE), float(SIZE)]] for _ in frames]
    with torch.no_grad():
        out = model(**processor(images=list(frames), boxes=boxes, return_tensors="pt"))
    results = processor.post_process_pose_estimation(out, boxes=boxes)
    np.testing.assert_allclose(uv, np.stack([r[0]["keypoints"].numpy() for r in results]), atol=1e-4)
    np.testing.assert_allclose(scores, np.stack([r[0]["scores"].numpy() for r in results]), atol=1e-5)
    hands_uv, hands_scores = pose.hands(frames)
    np.testing.assert_array_equal(hands_uv[:, 0], uv[:, 91:112])  # COCO-WholeBody left hand
    np.testing.assert_array_equal(hands_uv[:, 1], uv[:, 112:133])
    np.testing.assert_array_equal(hands_scores[:, 1], scores[:, 112:133])


def test_tiny_vitpose_lifted_at_the_depth_of_its_pixels(models, worlds):
    from egoworld.sim.camera import project
    from egoworld.sim.hand_estimation import HandEstimator, WholeBodyPoseModel

    frames = _frames(worlds / "no_hands")
    with np.load(worlds / "no_hands" / "tabletop" / "0.npz", allow_pickle=False) as z:
        K = z["K"]
    v, u = np.mgrid[0:SIZE, 0:SIZE]
    depth = 0.4 + 0.002 * u + 0.005 * v + 0.05 * np.arange(FRAMES)[:, None, None]  # [N, H, W]
    depth[:, :8] = np.nan  # the top rows unknown
    pose = WholeBodyPoseModel(models / "pose")
    uv, scores = pose.hands(frames)
    hands, conf = HandEstimator(pose, min_score=0.1, window=1, surface_offset=0.0, min_joints=1)(
        frames, depth, K
    )
    assert hands.shape == (FRAMES, 2, 21, 3) and conf.shape == (FRAMES, 2, 21)
    assert ((conf >= 0) & (conf <= 1)).all()
    known = np.isfinite(hands).all(-1)
    px = np.rint(uv).astype(int)
    inside = (px[..., 0] >= 0) & (px[..., 0] < SIZE) & (px[..., 1] >= 8) & (px[..., 1] < SIZE)
    np.testing.assert_array_equal(known, inside & (scores >= 0.1))
    assert known.sum() >= 10  # something to check below (fixed seed)
    f = np.nonzero(known)[0]
    np.testing.assert_allclose(hands[known][:, 2], depth[f, px[known][:, 1], px[known][:, 0]], atol=1e-12)
    np.testing.assert_allclose(project(hands, K)[0][known], uv[known], atol=1e-9)  # on the keypoint's ray
    np.testing.assert_allclose(conf[known], np.minimum(scores[known], 1.0), atol=1e-7)
    assert not conf[~known].any()


def test_vitpose_plus_gets_the_wholebody_expert(models, worlds):
    import torch
    from transformers import AutoImageProcessor, AutoModelForPoseEstimation

    from egoworld.sim.hand_estimation import COCO_WHOLEBODY_DATASET_INDEX, WholeBodyPoseModel

    frames = _frames(worlds / "no_hands")[:2]
    uv, _ = WholeBodyPoseModel(models / "pose_moe")(frames)
    processor = AutoImageProcessor.from_pretrained(models / "pose_moe")
    model = AutoModelForPoseEstimation.from_pretrained(models / "pose_moe").eval()
    boxes = [[[0.0, 0.0, float(SIZE), float(SIZE)]] for _ in frames]
    inputs = processor(images=list(frames), boxes=boxes, return_tensors="pt")
    for index, same in ((COCO_WHOLEBODY_DATASET_INDEX, True), (0, False)):
        with torch.no_grad():
            out = model(**inputs, dataset_index=torch.full((2,), index))
        results = processor.post_process_pose_estimation(out, boxes)
        theirs = np.stack([r[0]["keypoints"].numpy() for r in results])
        assert np.allclose(uv, theirs, atol=1e-4) == same
    with pytest.raises(ValueError, match="dataset_index=6; the model at .* has 6 experts, expected 0 … 5"):
        WholeBodyPoseModel(models / "pose_moe", dataset_index=6)
    with pytest.raises(ValueError, match="dataset_index=5; the model at .* has no experts"):
        WholeBodyPoseModel(models / "pose", dataset_index=5)


def test_loader_refusals(models, tmp_path):
    from egoworld.sim.hand_estimation import MetricDepthModel, WholeBodyPoseModel

    with pytest.raises(ValueError, match=r"predicts 17 keypoints; expected 133 \(COCO-WholeBody"):
        WholeBodyPoseModel(models / "pose17")
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        WholeBodyPoseModel(tmp_path)
    with pytest.raises(ValueError, match="is a relative Depth Anything model; hand estimation needs metric"):
        MetricDepthModel(models / "da_relative")
    with pytest.raises(ValueError, match="holds a 'vitpose' model; expected a metric Depth Anything"):
        MetricDepthModel(models / "pose")


# --------------------------------------------------------------------------- the CLI


def _copy(world: Path, dst: Path) -> Path:
    shutil.copytree(world / "tabletop", dst / "tabletop")
    shutil.copytree(world / "depth", dst / "depth")
    return dst


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def estimate_argv(root: Path, models: Path, *extra: str) -> list[str]:
    argv = ["sim", "estimate-hands", str(root), "--pose-model", str(models / "pose")]
    return [*argv, "--min-score", "0", "--no-progress", *extra]


def test_no_hands_export_leaves_only_the_hands_out(worlds):
    import json

    mine = _arrays(worlds / "no_hands" / "tabletop" / "0.npz")
    theirs = _arrays(worlds / "hands" / "tabletop" / "0.npz")
    assert sorted(theirs) == sorted([*mine, "hands", "hand_confidence"])
    for key, value in mine.items():
        np.testing.assert_array_equal(value, theirs[key], err_msg=key)
    desc = json.loads((worlds / "no_hands" / "egoworld_world.json").read_text())
    assert desc["options"] == {"format": "plain", "poses": True, "hands": False}


def test_cli_writes_hands_that_sim_prepare_accepts(models, worlds, tmp_path, capsys):
    from egoworld.sim.plain_video import check_in_front, read_episode
    from egoworld.sim.prepared import read_manifest

    root = _copy(worlds / "no_hands", tmp_path / "src")
    npz = root / "tabletop" / "0.npz"
    before = _arrays(npz)
    assert main(estimate_argv(root, models, "--depth", str(root / "depth"))) == 0
    out = capsys.readouterr().out
    assert "wrote hands for 1 episodes (9 frames" in out, out
    after = _arrays(npz)
    assert sorted(after) == sorted([*before, "hands", "hand_confidence"])
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)
    hands, conf = after["hands"], after["hand_confidence"]
    assert hands.shape == (FRAMES, 2, 21, 3) and conf.shape == (FRAMES, 2, 21)
    assert ((conf >= 0) & (conf <= 1)).all() and np.isfinite(hands).any()
    assert not conf[~np.isfinite(hands).all(-1)].any()
    episode = read_episode(root / "tabletop" / "0.mp4", npz, root)  # the plain reader accepts it
    check_in_front(episode)
    assert sorted(p.name for p in (root / "tabletop").iterdir()) == ["0.mp4", "0.npz"]  # no temp file left
    argv = ["sim", "prepare", str(root), "--out", str(tmp_path / "prep"), "--size", "32", "32"]
    argv += ["--frames", "5", "--stride", "4", "--depth", str(root / "depth"), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    meta = read_manifest(tmp_path / "prep")
    assert meta["layout"] == "plain" and len(meta["clips"]) == 2


def test_cli_with_a_metric_depth_model(models, worlds, tmp_path, capsys):
    root = _copy(worlds / "no_hands", tmp_path / "src")
    assert main(estimate_argv(root, models, "--depth-model", str(models / "da_metric"))) == 0
    capsys.readouterr()
    arrays = _arrays(root / "tabletop" / "0.npz")
    assert arrays["hands"].shape == (FRAMES, 2, 21, 3)
    z = arrays["hands"][..., 2]
    assert (z[np.isfinite(z)] > 0).all()


def test_cli_overwrite(models, worlds, tmp_path, capsys):
    root = _copy(worlds / "no_hands", tmp_path / "src")
    npz = root / "tabletop" / "0.npz"
    assert main(estimate_argv(root, models, "--depth", str(root / "depth"))) == 0
    first = _arrays(npz)
    marked = {**first, "hands": np.where(np.isfinite(first["hands"]), 1.0, np.nan)}
    np.savez(npz, **marked)
    data = npz.read_bytes()
    capsys.readouterr()
    assert main(estimate_argv(root, models, "--depth", str(root / "depth"))) == 0  # already has hands
    assert "nothing to estimate" in capsys.readouterr().out and npz.read_bytes() == data
    assert main(estimate_argv(root, models, "--depth", str(root / "depth"), "--overwrite")) == 0
    np.testing.assert_array_equal(_arrays(npz)["hands"], first["hands"])


def _drop(key):
    def damage(root: Path) -> None:
        arrays = _arrays(root / "tabletop" / "0.npz")
        arrays.pop(key)
        np.savez(root / "tabletop" / "0.npz", **arrays)

    return damage


def _short_depth(root: Path) -> None:
    path = root / "depth" / "tabletop" / "0.npy"
    np.save(path, np.load(path)[:-1])


def _short_poses(root: Path) -> None:
    arrays = _arrays(root / "tabletop" / "0.npz")
    arrays["cam_to_world"] = arrays["cam_to_world"][:-1]
    np.savez(root / "tabletop" / "0.npz", **arrays)


def _second_without_k(root: Path) -> None:
    """A second episode (sorted after the first) without K: neither file may change."""
    shutil.copy(root / "tabletop" / "0.mp4", root / "tabletop" / "1.mp4")
    arrays = _arrays(root / "tabletop" / "0.npz")
    arrays.pop("K")
    np.savez(root / "tabletop" / "1.npz", **arrays)


BAD = [
    pytest.param(_drop("K"), [], "missing key 'K'; expected the [3, 3] intrinsics", id="no-K"),
    pytest.param(_second_without_k, [], "1.npz: missing key 'K'", id="second-episode-no-K"),
    pytest.param(
        _short_depth,
        [],
        f"holds float32 [{FRAMES - 1}, {SIZE}, {SIZE}]; expected float metres or uint16 millimetres "
        f"[{FRAMES}, {SIZE}, {SIZE}]",
        id="depth-one-frame-short",
    ),
    pytest.param(
        _short_poses, [], f"cam_to_world has {FRAMES - 1} poses; expected {FRAMES}", id="poses-short"
    ),
    pytest.param(
        None, ["--pose-model", "{models}/pose17"], "predicts 17 keypoints; expected 133", id="17-keypoints"
    ),
    pytest.param(
        None,
        ["--depth-model", "{models}/da_relative", "--no-depth"],
        "is a relative Depth Anything model; hand estimation needs metric depth",
        id="relative-depth-model",
    ),
    pytest.param(
        None,
        ["--depth-model", "{models}/da_metric"],
        "give exactly one depth source",
        id="two-depth-sources",
    ),
    pytest.param(None, ["--no-depth"], "give exactly one depth source", id="no-depth-source"),
    pytest.param(
        None,
        ["--pose-model", "{root}/depth"],
        "config.json is missing; expected a local",
        id="pose-not-a-model",
    ),
]


@pytest.mark.parametrize("damage, extra, needle", BAD)
def test_bad_input_is_one_line_and_changes_nothing(models, worlds, tmp_path, capsys, damage, extra, needle):
    root = _copy(worlds / "no_hands", tmp_path / "src")
    if damage is not None:
        damage(root)
    before = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    extra = [e.format(models=models, root=root) for e in extra]
    argv = estimate_argv(root, models)
    if "--no-depth" in extra:
        extra.remove("--no-depth")
    else:
        argv += ["--depth", str(root / "depth")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err
    after = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    assert after == before  # byte-identical, and no temporary file left


def test_no_hands_is_for_the_plain_format(tmp_path, capsys):
    argv = ["worlds", "generate", "--task", "tabletop", "--format", "egodex", "--no-hands"]
    assert main([*argv, "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--no-hands applies to --format plain" in err, err
    assert not (tmp_path / "w").exists()
