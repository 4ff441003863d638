"""The action-following measurements: the flow statistics on motions whose direction is known,
mirroring, and the experiment end to end on a tiny random model (plumbing, not quality)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import egoworld.world_model  # noqa: F401  (diffusers before MuJoCo's EGL: see internet_prior.py)
from egoworld.actions.spaces import mirror_nav
from egoworld.cli import main
from egoworld.experiments.action_following import PROBES, flow_motion, probe_strips


def _texture(size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (size, size), cv2.INTER_CUBIC)
    return cv2.GaussianBlur(img, (5, 5), 1.0)


def _crops(big: np.ndarray, boxes) -> np.ndarray:
    return np.stack(
        [cv2.resize(big[y0:y1, x0:x1], (32, 32), interpolation=cv2.INTER_AREA) for x0, y0, x1, y1 in boxes]
    )


def test_content_moving_right_has_positive_horizontal_flow():
    big = _texture()
    # the camera pans left: the window moves left over the scene, so the content moves right
    frames = _crops(big, [(40 - 2 * t, 32, 72 - 2 * t, 64) for t in range(6)])
    m = flow_motion(frames)
    assert m["dx"] > 0.5
    assert flow_motion(frames[::-1])["dx"] < -0.5


def test_zooming_in_has_positive_radial_flow():
    big = _texture()
    frames = _crops(big, [(20 + 2 * t, 20 + 2 * t, 76 - 2 * t, 76 - 2 * t) for t in range(6)])
    assert flow_motion(frames)["radial"] > 0.2
    assert flow_motion(frames[::-1])["radial"] < -0.2


def test_mirroring_swaps_left_and_right_only():
    a = np.array([[0, 0, 0], [1.0, 0.2, 0.1], [0.5, -0.3, -0.2]], dtype=np.float32)
    m = mirror_nav(a)
    np.testing.assert_array_equal(m[:, 0], a[:, 0])
    np.testing.assert_array_equal(m[:, 1:], -a[:, 1:])
    np.testing.assert_array_equal(mirror_nav(m), a)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_probe_rows_are_labelled_with_their_image():
    videos = {name: [np.zeros((5, 8, 8, 3), np.uint8)] * 2 for name in PROBES}  # 2 images
    default = probe_strips(videos, every=1, tile=16)
    named = probe_strips(videos, ["astronaut.png", "coffee.png", "unused.png"], every=1, tile=16)
    assert named.shape == default.shape == (2 * 3 * 16 + 6, 120 + 5 * 16, 3)
    assert not np.array_equal(named[:16, :120], default[:16, :120])  # the label column says the file
    assert np.array_equal(named[:, 120:], default[:, 120:])  # the frames are the same
    first, second = named[:16, :120], named[3 * 16 + 6 : 4 * 16 + 6, :120]
    assert not np.array_equal(first, second)  # "astronaut.png" and "coffee.png"


def test_best_of_seeds_takes_each_clip_s_best_sample():
    from egoworld.experiments.evaluation import best_of_seeds, summarize

    per_seed = {  # two clips; seed 0 is better on clip a, seed 1 on clip b; a NaN is skipped
        "0": {"a": {"psnr": {"16": 20.0}}, "b": {"psnr": {"16": 10.0}}},
        "1": {"a": {"psnr": {"16": 12.0}}, "b": {"psnr": {"16": float("nan")}}},
        "2": {"a": {"psnr": {"16": 14.0}}, "b": {"psnr": {"16": 16.0}}},
    }
    assert best_of_seeds(per_seed) == {"psnr": {"16": 18.0}}  # mean of 20 and 16
    assert summarize(per_seed)["psnr"]["16"][0] < 18.0  # the typical sample scores lower


def _nav_worlds(folder, frames: int, seed: int):
    """Two generated 32-px nav worlds of `frames` frames in `folder`."""
    args = ["--episodes", "2", "--frames", str(frames), "--size", "32", "--seed", str(seed)]
    assert main(["worlds", "generate", "--task", "nav", *args, "--out", str(folder), "--no-progress"]) == 0
    return folder


def _tiny_model():
    """A fresh tiny 32-px SVD world model (seeded), 9 frames per chunk, 2 sampler steps."""
    from egoworld.world_model import WorldModel, WorldModelConfig

    torch.manual_seed(0)
    config = WorldModelConfig(
        family="svd", preset="tiny", num_frames=9, height=32, width=32, hidden_dim=32, num_inference_steps=2
    )
    return WorldModel.build(config)


def test_experiment_end_to_end_on_a_tiny_model(tmp_path, one_thread, capsys):
    worlds = _nav_worlds(tmp_path / "worlds", 17, seed=3)
    _tiny_model().save_pretrained(tmp_path / "model")
    out, model = tmp_path / "af", str(tmp_path / "model")
    paintings = tmp_path / "paintings"  # probes from any image: 3 of other sizes, resized and cropped
    paintings.mkdir()
    for i, (w, h) in enumerate([(48, 40), (20, 64), (32, 32)]):
        cv2.imwrite(str(paintings / f"p{i}.png"), cv2.resize(_texture(), (w, h)))
    (paintings / "notes.txt").write_text("not an image")
    assert main(["experiment", "action-following", "--worlds", str(worlds), "--model", model,
                 "--out", str(out), "--seeds", "1", "--probe-images", str(paintings)]) == 0  # fmt: skip
    doc = json.loads((out / "results.json").read_text())
    assert doc["episodes"] == 2 and set(doc["probes"]["correct"]) == {"turn_left", "turn_right", "forward"}
    assert doc["probes_from"] == str(paintings) and len(doc["probes"]["per_image"]["turn_left"][0]) == 3
    still = doc["probes"]["standing_still"]  # 1 seed x 3 images, frames 4-16 against the start image
    assert np.array(still["per_image"]).shape == (1, 3)
    assert still["psnr"] == pytest.approx(np.mean(still["per_image"]))
    turning = doc["probes"]["turning_in_picture"]  # against the exact frames of a turn in the picture
    for key in ("psnr", "copy_first"):
        assert set(turning[key]) == {"turn_left", "turn_right"}
        assert all(np.isfinite(list(turning[key].values())))
    assert set(doc["rows"]) == {"model", "model, zero actions", "copy first frame"}
    gaps = [r["gap"] for r in doc["mirrored"]["per_world"]["0"].values()]
    assert len(gaps) == 2 and all(np.isfinite(gaps))
    # a fresh wrapper ignores its actions (zero-initialised output): true and mirrored rollouts agree
    assert max(abs(g) for g in gaps) < 1e-6
    assert "PSNR true − mirrored" in (out / "results.md").read_text()
    row = doc["rows"]["model"]  # one seed: the best sample is the only one
    assert row["best_of_seeds"]["psnr"]["16"] == pytest.approx(row["summary"]["psnr"]["16"][0])
    assert "best of 1: SCS@16, PSNR@16" in (out / "results.md").read_text()
    assert "zero actions (standing still)" in (out / "results.md").read_text()
    assert "in front of the image: frames 1–6 against the exact turn" in (out / "results.md").read_text()
    assert "PSNR true − mirrored" in capsys.readouterr().out
    from PIL import Image

    figure = np.asarray(Image.open(out / "rollouts.png"))  # 2 worlds x (truth, true, mirrored), 9 frames
    assert figure.shape == (2 * 3 * 96 + 6, 120 + 9 * 96, 3)
    frame0 = figure[:96, 120:216]  # every row starts from the world's first frame
    assert np.array_equal(frame0, figure[96:192, 120:216])
    assert np.array_equal(frame0, figure[192:288, 120:216])
    probes = np.asarray(Image.open(out / "probes.png"))  # 3 images x (left, right, forward), 17 frames
    assert probes.shape == (3 * 3 * 96 + 2 * 6, 120 + 9 * 96, 3)
    for top in (0, 3 * 96 + 6, 6 * 96 + 12):  # each image's three walks start from that image
        first = probes[top : top + 96, 120:216]
        assert np.array_equal(first, probes[top + 96 : top + 192, 120:216])
        assert np.array_equal(first, probes[top + 192 : top + 288, 120:216])
    assert not np.array_equal(probes[:96, 120:216], probes[3 * 96 + 6 : 4 * 96 + 6, 120:216])


def test_cli_refuses_a_folder_that_is_not_nav_worlds(tmp_path, capsys):
    assert (
        main(["experiment", "action-following", "--worlds", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "generated nav dataset" in err[0]
    assert not (tmp_path / "o").exists()


def test_cli_refuses_probe_images_that_are_not_images(tmp_path, capsys):
    worlds = tmp_path / "worlds"
    assert main(["worlds", "generate", "--task", "nav", "--episodes", "1", "--frames", "9", "--size", "32",
                 "--out", str(worlds), "--no-progress"]) == 0  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    for folder, message in ((empty, "no images"), (tmp_path / "missing", "not a folder")):
        args = ["experiment", "action-following", "--worlds", str(worlds), "--out", str(tmp_path / "o")]
        assert main([*args, "--probe-images", str(folder)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "--probe-images" in err[0]
        assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("residual", [None, 2.0])
def test_high_noise_error_scores_copying_as_one_and_the_truth_as_zero(residual, monkeypatch):
    """`high_noise_error` on oracle denoisers: one that returns the true x0 scores 0, one that
    predicts the first frame everywhere scores exactly "copy first frame" (ratio 1)."""
    from egoworld.experiments.action_following import high_noise_error
    from egoworld.experiments.evaluation import EvalClip
    from egoworld.model_config import WorldModelConfig
    from egoworld.world_model import WorldModel

    config = WorldModelConfig(
        family="cosmos", preset="tiny", codec="pixel", num_frames=5, height=16, width=16,
        hidden_dim=16, use_image_encoder=False, pixel_residual=residual,
    )  # fmt: skip
    wm = WorldModel.build(config).eval()
    rng = np.random.default_rng(0)
    clips = [
        EvalClip(f"c{i}", rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8), np.zeros((5, 3), np.float32),
                 None, [], 5)
        for i in range(2)
    ]  # fmt: skip
    video = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    x0_true = wm.codec.encode(video)
    x0_copy = wm.codec.encode(video[:, :1].expand(-1, 5, -1, -1, -1))
    for x0, want in ((x0_true, 0.0), (x0_copy, 1.0)):
        # v = (x_t - x0) / t, so that x_t - t v = x0
        monkeypatch.setattr(type(wm.family), "velocity", lambda self, m, x_t, t, *a, x0=x0: (x_t - x0) / 0.9)
        out = high_noise_error(wm, clips, draws=2)
        assert out["ratio"] == pytest.approx(want, abs=1e-5)
        copy = float(((video[:, 1:] - video[:, :1]) ** 2).mean())
        assert out["copy_first"] == pytest.approx(copy, rel=1e-6)


def test_mirrored_gap_reusing_the_scored_rollouts_equals_rolling_them_out_again(tmp_path, one_thread):
    from egoworld.experiments.action_following import mirrored_gap
    from egoworld.experiments.evaluation import evaluate_model, load_eval_clips

    worlds = _nav_worlds(tmp_path / "worlds", 9, seed=4)
    model = _tiny_model().eval()
    proj = model.denoiser.action_encoder.proj_out  # an action path that reads its actions
    torch.nn.init.normal_(proj.weight, std=0.5)
    clips = load_eval_clips(worlds, 9, 32)
    scored = evaluate_model(model, clips, [0, 1])["predictions"]
    reused = mirrored_gap(model, clips, [0, 1], true_rollouts=scored)
    again = mirrored_gap(model, clips, [0, 1])
    assert reused == again
    assert any(abs(r["gap"]) > 1e-3 for rows in again["per_world"].values() for r in rows.values())
