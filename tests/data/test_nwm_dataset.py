import pickle

import numpy as np
import pytest
import torch
from data_builders import circle_poses, decode_code, write_nwm_traj

from egoworld.actions.normalization import ActionNormalizer
from egoworld.actions.spaces import nav_deltas
from egoworld.data.nwm import NWMDataset, load_trajectory


def test_load_trajectory(nwm_root):
    t = load_trajectory(nwm_root / "traj_a")
    assert t["position"].shape == (20, 2) and t["yaw"].shape == (20,)
    assert [p.name for p in t["image_paths"][:3]] == ["0.jpg", "1.jpg", "2.jpg"]


def test_clips_frames_and_actions(nwm_root):
    ds = NWMDataset(nwm_root, context=2, horizon=2, stride=5, frame_step=2, resolution=16, output="clip")
    # traj_a: 20 frames, span 7, starts 0, 10 ; traj_b: 12 frames, start 0
    assert len(ds) == 3 and ds.spacing == 0.25
    clip = ds[1]
    np.testing.assert_array_equal(clip.frame_indices, [10, 12, 14, 16])
    assert decode_code(clip.frames) == [10, 12, 14, 16]
    assert clip.frames.shape == (4, 16, 16, 3) and clip.episode == "traj_a" and clip.state is None
    t = load_trajectory(nwm_root / "traj_a")
    idx = clip.frame_indices
    want = nav_deltas(t["position"][idx], t["yaw"][idx], 0.25)
    np.testing.assert_allclose(clip.actions[0], 0)
    np.testing.assert_allclose(clip.actions[1:], want, atol=1e-6)
    # the circle turns left by 1.6 pi / 19 per raw step -> 2 steps per clip frame
    np.testing.assert_allclose(clip.actions[1:, 2], 2 * 1.6 * np.pi / 19, atol=1e-5)


def test_yaw_wraparound_inside_a_trajectory(tmp_path):
    pos = np.zeros((4, 2))
    yaw = np.array([3.0, -3.0, -2.9, 3.1])
    root = tmp_path / "scand"
    write_nwm_traj(root / "t", pos, yaw)
    clip = NWMDataset(root, context=1, horizon=3, resolution=None, output="clip")[0]
    np.testing.assert_allclose(clip.actions[1:, 2], [2 * np.pi - 6.0, 0.1, 6.0 - 2 * np.pi], atol=1e-5)


def test_splits_cumulative_and_tensors(nwm_root):
    train = NWMDataset(nwm_root, split="train", context=1, horizon=3, resolution=8)
    test = NWMDataset(nwm_root, split="test", context=1, horizon=3, resolution=8)
    assert {w[0] for w in train.windows} == {0} and len(test) == 9
    item = train[0]
    assert item["frames"].shape == (4, 3, 8, 8) and item["actions"].shape == (4, 3)
    loader = torch.utils.data.DataLoader(train, batch_size=2)
    assert next(iter(loader))["frames"].shape == (2, 4, 3, 8, 8)
    cum = NWMDataset(nwm_root, context=2, horizon=2, action_mode="cumulative", resolution=None, output="clip")
    c = cum[0]
    np.testing.assert_allclose(c.actions[1], 0, atol=1e-6)  # relative to the last context frame
    t = load_trajectory(nwm_root / "traj_a")
    step = nav_deltas(t["position"][1:3], t["yaw"][1:3], 0.25)[0]
    np.testing.assert_allclose(c.actions[2], step, atol=1e-5)  # one step ahead of frame 1


def test_normalizer_applied_and_checked(nwm_root):
    ds = NWMDataset(nwm_root, context=1, horizon=3, resolution=None, output="clip")
    norm = ActionNormalizer.fit(ds.all_actions(), meta={"dataset": "recon", "spacing": 0.25})
    normed = NWMDataset(nwm_root, context=1, horizon=3, resolution=None, normalizer=norm, output="clip")
    a, b = ds[3].actions, normed[3].actions
    np.testing.assert_allclose(b[0], 0)
    np.testing.assert_allclose(norm.denormalize(b[1:]), a[1:], atol=1e-5)
    wrong = ActionNormalizer.fit(ds.all_actions(), meta={"dataset": "recon", "spacing": 0.5})
    with pytest.raises(ValueError, match="spacing=0.5, expected 0.25"):
        NWMDataset(nwm_root, normalizer=wrong)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "3.jpg").unlink(), r"missing frames \[3\]"),
        (lambda d: (d / "20.jpg").write_bytes((d / "0.jpg").read_bytes()), "21 images but 20 positions"),
        (
            lambda d: (d / "traj_data.pkl").write_bytes(
                pickle.dumps({"position": np.zeros((0, 2)), "yaw": []})
            ),
            "empty trajectory",
        ),
        (
            lambda d: (d / "traj_data.pkl").write_bytes(pickle.dumps({"position": np.zeros((20, 2))})),
            r"missing keys \['yaw'\]",
        ),
        (lambda d: (d / "traj_data.pkl").unlink(), None),
    ],
)
def test_bad_trajectories_refused_with_one_clear_error(nwm_root, damage, message):
    damage(nwm_root / "traj_a")
    message = message or "traj_a: no traj_data.pkl"
    with pytest.raises(ValueError, match=message):
        NWMDataset(nwm_root)


def test_corrupt_jpeg_raises_value_error_naming_file(nwm_root):
    (nwm_root / "traj_b" / "2.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ds = NWMDataset(nwm_root, split="test", context=1, horizon=3, resolution=None)
    with pytest.raises(ValueError, match=r"traj_b/2.jpg: corrupt"):
        ds[0]


def test_unknown_dataset_needs_spacing(tmp_path):
    pos, yaw = circle_poses(5)
    write_nwm_traj(tmp_path / "mine" / "t0", pos, yaw)
    with pytest.raises(ValueError, match="unknown metric waypoint spacing"):
        NWMDataset(tmp_path / "mine")
    assert NWMDataset(tmp_path / "mine", spacing=1.0, context=1, horizon=1).spacing == 1.0
