"""`egoworld.rollout`: start images of any size/format and actions from files or scripts."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from egoworld.actions.normalization import ActionNormalizer
from egoworld.rollout import fit_frames, load_actions, load_image, parse_script

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
    with pytest.raises(ValueError, match="action_mode='cumulative'"):
        load_actions("forward 1m", fake_model(meta={"spacing": 0.25, "action_mode": "cumulative"}))
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
