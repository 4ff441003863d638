"""`egoworld.rollout`: start images of any size/format, actions from files or scripts, model folders,
the checks before sampling and the warning about actions the model never saw."""

from __future__ import annotations

import json
import logging
import math
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from egoworld.actions.normalization import ActionNormalizer
from egoworld.rollout import (
    MAX_FRAMES,
    UNFAMILIAR_MARGIN,
    check_device,
    check_image,
    check_sampling,
    fit_frames,
    load_actions,
    load_image,
    load_reference_frames,
    parse_script,
    read_model_info,
    resolve_model_dir,
    run_rollout,
    unfamiliar_actions,
    warn_if_unfamiliar,
)

from .conftest import SPACING


def fake_model(action_dim=3, meta=None):
    """Only what `load_actions` reads: the action width and the statistics' meta."""
    normalizer = None
    if meta is not None:
        zeros = np.zeros(action_dim)
        normalizer = ActionNormalizer("meanstd", zeros, zeros + 1, zeros - 1, zeros + 1, meta=meta)
    return SimpleNamespace(config=SimpleNamespace(action_dim=action_dim), normalizer=normalizer)


# images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["png", "jpg", "gray"])
def test_any_image_becomes_an_rgb_frame_of_the_model_size(images, kind):
    out = load_image(images[kind], 32, 48)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8 and out.flags.writeable


def test_short_side_is_resized_then_the_centre_is_cropped(tmp_path):
    # 80x40 (W x H): left half black, right half white, a red 20-pixel band in the middle.
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 40:] = 255
    img[:, 30:50] = (255, 0, 0)
    Image.fromarray(img).save(tmp_path / "band.png")
    out = load_image(tmp_path / "band.png", 20, 20)  # scale 0.5 -> 40x20, crop columns 10..30
    assert out.shape == (20, 20, 3)
    centre = out[:, 6:14].reshape(-1, 3).mean(0)  # the band (columns 15..25 at half size) stays central
    assert centre[0] > 200 and centre[1] < 60 and centre[2] < 60
    assert out[:, 0].mean() < 40 and out[:, -1].mean() > 215  # black left edge, white right edge


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="broken.png"):
        load_image(bad, 32, 32)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg", 32, 32)


def test_fit_frames_matches_load_image(images):
    frame = np.asarray(Image.open(images["jpg"]).convert("RGB"))
    np.testing.assert_array_equal(fit_frames(frame[None], 24, 40)[0], load_image(images["jpg"], 24, 40))


# scripts --------------------------------------------------------------------------------------


def test_script_values_by_hand():
    a = parse_script("forward 0.5m x2; turn_left 15deg; strafe_right 20cm; turn_right 0.5rad; stay x2", 0.25)
    expected = [
        [0, 0, 0],  # the start frame
        [2.0, 0, 0],  # 0.5 m / 0.25 m per unit
        [2.0, 0, 0],
        [0, 0, math.radians(15)],  # left = counter-clockwise = +yaw
        [0, -0.8, 0],  # right = -y in the robot frame; 0.2 m / 0.25
        [0, 0, -0.5],
        [0, 0, 0],
        [0, 0, 0],
    ]
    np.testing.assert_allclose(a, np.array(expected, np.float32), atol=1e-6)
    assert a.dtype == np.float32


def test_script_turns_degrees_and_aliases():
    a = parse_script("turn_left 90deg x4\nback 1m\nleft 30\nwait", 0.5)
    assert a.shape == (8, 3)
    np.testing.assert_allclose(a[1:5, 2].sum(), 2 * math.pi, atol=1e-6)  # four quarter turns
    np.testing.assert_allclose(a[5], [-2.0, 0, 0])  # back 1 m at 0.5 m per unit
    np.testing.assert_allclose(a[6, 2], math.pi / 6, atol=1e-6)  # bare number on a turn: degrees
    np.testing.assert_allclose(a[7], [0, 0, 0])


@pytest.mark.parametrize(
    "script,match",
    [
        ("forward 1m; jump 2m", r"unknown word 'jump'.*known: \['backward', 'forward'"),
        ("forward", "no amount"),
        ("forward 2parsecs", "cannot read amount"),
        ("turn_left 10m", "cannot read amount"),
        ("stay 3", "unexpected '3'"),
        (" ; ", "has no steps"),
    ],
)
def test_bad_scripts_say_what_is_wrong(script, match):
    with pytest.raises(ValueError, match=match):
        parse_script(script, 0.25)


def test_script_spacing_comes_from_the_model_else_the_option():
    model = fake_model(meta={"spacing": SPACING, "action_mode": "delta"})
    np.testing.assert_allclose(load_actions("forward 1m", model)[1], [4.0, 0, 0])
    np.testing.assert_allclose(load_actions("forward 1m", fake_model(), spacing=0.5)[1], [2.0, 0, 0])
    with pytest.raises(ValueError, match="--spacing"):
        load_actions("forward 1m", fake_model())
    with pytest.raises(ValueError, match="disagrees"):
        load_actions("forward 1m", model, spacing=0.5)
    # a model trained on cumulative poses takes the same per-step script (it composes each chunk itself)
    cumulative = fake_model(meta={"spacing": SPACING, "action_mode": "cumulative"})
    np.testing.assert_allclose(load_actions("forward 1m", cumulative)[1], [4.0, 0, 0])
    with pytest.raises(ValueError, match="action_dim=25"):
        load_actions("forward 1m", fake_model(25), spacing=0.25)


# files ----------------------------------------------------------------------------------------


def test_action_files_npy_json_csv(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    np.save(tmp_path / "a.npy", a)
    (tmp_path / "a.json").write_text(json.dumps(a.tolist()))
    (tmp_path / "b.json").write_text(json.dumps({"actions": a.tolist()}))
    (tmp_path / "a.csv").write_text("dx,dy,dyaw\n" + "\n".join(",".join(map(str, r)) for r in a.tolist()))
    for name in ("a.npy", "a.json", "b.json", "a.csv"):
        out = load_actions(tmp_path / name, fake_model())
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, a, rtol=1e-6)
    np.testing.assert_allclose(load_actions(str(tmp_path / "a.csv"), fake_model()), a, rtol=1e-6)


@pytest.mark.parametrize(
    "array,match",
    [
        (np.zeros((5, 2)), r"shape \(5, 2\); expected \[N, 3\]"),
        (np.zeros((1, 3)), "at least 2"),
        (np.array([[0, 0, 0], [1, np.nan, 0]]), "NaN or Inf .*row 1, column 1"),
    ],
)
def test_bad_action_arrays(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError, match=match):
        load_actions(tmp_path / "bad.npy", fake_model())


def test_bad_action_files(tmp_path):
    (tmp_path / "ragged.json").write_text("[[1, 2, 3], [4, 5]]")
    (tmp_path / "keys.json").write_text('{"acts": []}')
    (tmp_path / "words.csv").write_text("1,2,3\n4,five,6\n")
    for name, match in [("ragged.json", "equal-length"), ("keys.json", "'actions'"), ("words.csv", "number")]:
        with pytest.raises(ValueError, match=match):
            load_actions(tmp_path / name, fake_model())
    with pytest.raises(FileNotFoundError, match="nothing.npy"):
        load_actions("nothing.npy", fake_model())


# limits and checks ----------------------------------------------------------------------------


def test_scripts_and_files_are_capped_at_max_frames(tmp_path):
    with pytest.raises(ValueError, match=f"makes 100000001 frames by here; expected at most {MAX_FRAMES}"):
        parse_script("forward 0.5m x100000000", 0.25)  # refused before a list of 10^8 rows is built
    with pytest.raises(ValueError, match="expected at most"):
        parse_script("stay x5000; stay x5000", 0.25)
    assert parse_script(f"stay x{MAX_FRAMES - 1}", 0.25).shape == (MAX_FRAMES, 3)
    np.save(tmp_path / "long.npy", np.zeros((MAX_FRAMES + 1, 3)))
    with pytest.raises(ValueError, match=f"{MAX_FRAMES + 1} action rows; expected at most"):
        load_actions(tmp_path / "long.npy", fake_model())


@pytest.mark.parametrize(
    "steps, guidance, match",
    [
        (0, None, r"sampler steps 0; expected an integer in \[1, 1000\]"),
        (-3, None, "sampler steps -3"),
        (2.5, None, "sampler steps 2.5"),
        (True, None, "sampler steps True"),
        (10**6, None, "sampler steps 1000000"),
        (None, float("nan"), "guidance nan"),
        (None, float("inf"), "guidance inf"),
        (None, -1.0, "guidance -1.0"),
        (None, "x", "guidance 'x'"),
    ],
)
def test_check_sampling(steps, guidance, match):
    with pytest.raises(ValueError, match=match):
        check_sampling(steps, guidance)


def test_check_sampling_accepts_defaults_and_sane_values():
    check_sampling(None, None)
    check_sampling(np.int64(12), 0.0)
    check_sampling(1, 7.5)


def test_check_image_refuses_float_and_wrong_sizes():
    with pytest.raises(ValueError, match="start image is float64; expected uint8"):
        check_image(np.zeros((32, 32, 3)), 32, 32)
    with pytest.raises(ValueError, match=r"shape \(32, 32\); expected \(32, 32, 3\)"):
        check_image(np.zeros((32, 32), np.uint8), 32, 32)
    assert check_image(np.zeros((8, 16, 3), np.uint8), 8, 16).shape == (8, 16, 3)


def test_run_rollout_checks_before_sampling(loaded_model):
    """The library entry point refuses what `WorldModel.rollout` would silently accept."""
    image = np.zeros((32, 32, 3), np.uint8)
    actions = np.zeros((3, 3), np.float32)
    for kwargs, match in [
        (dict(image=image.astype(np.float32)), "float32"),
        (dict(num_inference_steps=0), "sampler steps 0"),
        (dict(guidance=float("nan")), "guidance nan"),
    ]:
        args = {"image": image, "actions": actions, **kwargs}
        with pytest.raises(ValueError, match=match):
            run_rollout(loaded_model, args.pop("image"), args.pop("actions"), **args)
    video = run_rollout(loaded_model, image, actions, num_inference_steps=1)
    assert video.shape == (3, 32, 32, 3) and video.dtype == np.uint8


def test_check_device_lists_what_exists():
    import torch

    assert check_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda': CUDA is not available here.*devices here: cpu"):
            check_device("cuda")
    with pytest.raises(ValueError, match="devices here: cpu"):
        check_device("cuda:99")
    with pytest.raises(ValueError, match="not a torch device name"):
        check_device("tpu")


# unfamiliar actions ---------------------------------------------------------------------------


def nav_model(spacing=0.15):
    """Statistics like the first demo-nav model: forward steps of 0..1.37 units (0.2 m at 0.15 m)."""
    normalizer = ActionNormalizer(
        "meanstd",
        mean=[0.93, 0.01, 0.02],
        std=[0.17, 0.07, 0.13],
        min=[-0.0, -0.225, -0.25],
        max=[1.369, 0.244, 0.270],
        meta={"dataset": "egoworld_nav", "spacing": spacing},
    )
    return SimpleNamespace(config=SimpleNamespace(action_dim=3), normalizer=normalizer)


def test_half_metre_steps_for_a_model_trained_on_short_steps_warn_once(caplog):
    model = nav_model()
    walk = load_actions("forward 0.5m x8; turn_left 15deg x4", model)  # the README's painting walk
    with caplog.at_level(logging.WARNING, logger="egoworld.rollout"):
        message = warn_if_unfamiliar(walk, model)
    assert len(caplog.records) == 1 and caplog.records[0].getMessage() == message
    assert "\n" not in message
    assert message.startswith("8 of 12 steps are far outside the model's training actions (egoworld_nav)")
    assert "forward step dx reaches 0.5 m where training saw 0..0.205 m" in message
    assert "turn" not in message  # 15 degrees is inside the trained turns (up to 15.5 degrees)
    assert unfamiliar_actions(load_actions("forward 0.2m x8; turn_left 15deg x4", model), model) is None


def test_unfamiliar_threshold_is_a_quarter_of_the_range_beyond_min_and_max():
    model = nav_model()
    lo, hi = model.normalizer.min[0], model.normalizer.max[0]
    margin = UNFAMILIAR_MARGIN * (hi - lo)
    inside = np.array([[0, 0, 0], [hi + 0.9 * margin, 0, 0]])
    outside = np.array([[0, 0, 0], [hi + 1.1 * margin, 0, 0]])
    below = np.array([[0, 0, 0], [lo - 1.1 * margin, 0, 0]])
    assert unfamiliar_actions(inside, model) is None
    assert "1 of 1 steps" in unfamiliar_actions(outside, model)
    assert unfamiliar_actions(below, model) is not None
    # row 0 (the start frame) is never judged; without statistics there is nothing to compare to
    assert unfamiliar_actions(np.array([[99.0, 0, 0], [0.5, 0, 0]]), model) is None
    assert unfamiliar_actions(outside, fake_model()) is None


def test_unfamiliar_actions_of_other_spaces_name_the_column():
    zeros = np.zeros(2)
    normalizer = ActionNormalizer("minmax", zeros, zeros + 1, zeros - 1, zeros + 1)
    model = SimpleNamespace(config=SimpleNamespace(action_dim=2), normalizer=normalizer)
    message = unfamiliar_actions(np.array([[0, 0], [0, 5.0]]), model)
    assert "column 1 reaches 5 where training saw -1..1" in message


# model folders --------------------------------------------------------------------------------


def _run_folder(model_dir, tmp_path, steps=(), final=False, incomplete=()):
    """A training run folder: checkpoints/step-N/{model, trainer_state.json, manifest.json}, optionally
    final/ (the trainer writes manifest.json last, so a checkpoint without one is incomplete)."""
    run = tmp_path / "run"
    for step in steps:
        ckpt = run / "checkpoints" / f"step-{step:08d}"
        shutil.copytree(model_dir, ckpt / "model")
        (ckpt / "trainer_state.json").write_text(json.dumps({"step": step}))
        (ckpt / "manifest.json").write_text("{}")
    for step in incomplete:  # a checkpoint killed before its manifest was written
        shutil.copytree(model_dir, run / "checkpoints" / f"step-{step:08d}" / "model")
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "checkpoints" / ".tmp-step-00000099").mkdir()
    if final:
        shutil.copytree(model_dir, run / "final")
    return run


def test_resolve_model_dir(model_dir, tmp_path):
    assert resolve_model_dir(model_dir) == (model_dir, "")
    run = _run_folder(model_dir, tmp_path, steps=(10, 20), incomplete=(30,))
    folder, note = resolve_model_dir(run)
    assert folder == run / "checkpoints" / "step-00000020" / "model"
    assert "newest complete checkpoint" in note and str(folder) in note
    shutil.copytree(model_dir, run / "final")
    assert resolve_model_dir(run) == (run / "final", f"using {run / 'final'} (the run's final model)")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no world model; expected a world-model folder"):
        resolve_model_dir(empty)
    with pytest.raises(FileNotFoundError, match="not found; expected"):
        resolve_model_dir(tmp_path / "nothing")
    with pytest.raises(NotADirectoryError, match="is a file"):
        resolve_model_dir(model_dir / "normalization.json")


def test_read_model_info_needs_no_weights(model_dir, tmp_path):
    info = read_model_info(model_dir)
    assert info.config.action_dim == 3 and info.normalizer.meta["spacing"] == SPACING
    np.testing.assert_allclose(load_actions("forward 1m", info)[1], [4.0, 0, 0])
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "egoworld_world_model.json").write_text('{"family": "svd", "num_frames": "many"}')
    with pytest.raises(ValueError, match="not a valid world-model config"):
        read_model_info(broken)


def test_reference_frames_from_a_video_or_a_folder(tmp_path):
    from egoworld.data.video import write_video
    from egoworld.metrics.videos import write_frame_folder

    frames = np.random.default_rng(0).integers(0, 256, (5, 48, 64, 3), dtype=np.uint8)
    write_frame_folder(frames, tmp_path / "frames")
    out = load_reference_frames(tmp_path / "frames", 4, 32, 32)
    np.testing.assert_array_equal(out, fit_frames(frames[:4], 32, 32))
    write_video(tmp_path / "v.mp4", frames, fps=5)
    assert load_reference_frames(tmp_path / "v.mp4", 5, 32, 32).shape == (5, 32, 32, 3)
    with pytest.raises(ValueError, match="has 5 frames; the rollout has 6"):
        load_reference_frames(tmp_path / "frames", 6, 32, 32)
    with pytest.raises(FileNotFoundError, match="not found; expected a video file or a folder of frames"):
        load_reference_frames(tmp_path / "none", 2, 32, 32)


def test_npy_actions_whose_header_lies_are_refused_before_allocation(tmp_path):
    """A header claiming 2 TiB would be a MemoryError traceback; a truncated file or a pickle one line."""
    with open(tmp_path / "huge.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (10**11, 3)}
        )
        fh.write(bytes(100))
    np.save(tmp_path / "full.npy", np.zeros((100, 3)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "full.npy").read_bytes()[:300])
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name, match in [
        ("huge.npy", r"header claims \[100000000000, 3\] float64 \(2400000000000 bytes\)"),
        ("cut.npy", "truncated or corrupt"),
        ("objects.npy", "holds Python objects"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_actions(tmp_path / name, fake_model())
    assert load_actions(tmp_path / "full.npy", fake_model()).shape == (100, 3)
