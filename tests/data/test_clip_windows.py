import numpy as np
import pytest
import torch

from egoworld.data.clip import (
    Clip,
    WindowSpec,
    build_windows,
    contiguous_runs,
    frame_step_for,
    resize_center_crop,
    with_leading_zero,
)


def test_windows_never_cross_runs():
    spec = WindowSpec(context=2, horizon=2, frame_step=2, stride=1)
    assert spec.length == 4 and spec.span == 7
    runs = contiguous_runs(np.array([0] * 8 + [1] * 6 + [0] * 7))
    assert runs == [(0, 0, 8), (1, 8, 6), (0, 14, 7)]
    wins = build_windows(runs, spec)
    # run 0 (8 frames): start 0 only (start 2 would need frame 8); run 1 (6 < span 7): none
    assert wins == [(0, 0), (0, 14)]
    spans = {0: range(0, 8), 14: range(14, 21)}
    for _, s in wins:
        assert all(i in spans[s] for i in spec.indices(s))
    # a run exactly one span long yields one window
    assert build_windows([("x", 3, 7)], spec) == [("x", 3)]


def test_stride_and_subsampling():
    spec = WindowSpec(context=1, horizon=2, frame_step=6, stride=5)
    np.testing.assert_array_equal(spec.indices(3), [3, 9, 15])
    assert spec.starts(100).tolist() == list(range(0, 100 - 12, 30))
    assert frame_step_for(30, 5) == 6 and frame_step_for(30, None) == 1
    with pytest.raises(ValueError, match="divide"):
        frame_step_for(30, 7)
    with pytest.raises(ValueError, match="stride"):
        WindowSpec(stride=0)


def test_resize_center_crop_keeps_centre():
    frames = np.zeros((2, 40, 80, 3), np.uint8)
    frames[:, :, 20:60] = 200  # central square
    out = resize_center_crop(frames, 20)
    assert out.shape == (2, 20, 20, 3) and out.dtype == np.uint8
    assert out.min() == 200  # only the centre survives the crop
    assert resize_center_crop(frames, None) is frames
    with pytest.raises(ValueError, match="positive"):
        resize_center_crop(frames, (0, 4))


def test_clip_tensors_and_validation():
    a = with_leading_zero(np.ones((2, 3)))
    clip = Clip(np.full((3, 4, 4, 3), 255, np.uint8), a, None, "e", 0, np.arange(3))
    t = clip.to_tensors()
    assert t["frames"].shape == (3, 3, 4, 4) and torch.allclose(t["frames"], torch.ones(1))
    assert t["actions"][0].abs().sum() == 0 and "state" not in t
    with pytest.raises(ValueError, match="actions must be"):
        Clip(np.zeros((3, 4, 4, 3), np.uint8), np.zeros((2, 3), np.float32), None, "e", 0, np.arange(3))
