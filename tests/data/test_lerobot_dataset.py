import json

import numpy as np
import pytest
from data_builders import decode_code, lerobot_actions, write_lerobot

from egoworld.data.lerobot import LeRobotDataset


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_frames_actions_state_per_episode(tmp_path, version):
    root = write_lerobot(tmp_path / "ds", [7, 5], version=version)
    ds = LeRobotDataset(root, context=1, horizon=2, frame_step=2, resolution=None, output="clip")
    # episode 0: 7 frames, span 5, starts every 2 raw frames -> 0, 2; episode 1: 5 frames -> 0
    assert [(e, s) for e, s in ds.windows] == [(0, 0), (0, 2), (1, 0)]
    clip = ds[2]
    assert clip.episode == "1"
    np.testing.assert_array_equal(clip.frame_indices, [0, 2, 4])
    assert decode_code(clip.frames) == [10, 12, 14]  # episode 1 starts at code 10
    acts = lerobot_actions(1, 5)
    np.testing.assert_allclose(clip.actions, [[0, 0], acts[0], acts[2]])
    np.testing.assert_allclose(clip.state, acts[0, 0] * 0.5 + np.arange(3))
    assert decode_code(ds[1].frames) == [2, 4, 6]
    assert ds[1].to_tensors()["actions"].shape == (3, 2)


def test_keys_by_name_and_errors(tmp_path):
    root = write_lerobot(tmp_path / "ds", [4], version="v2.1")
    ds = LeRobotDataset(root, image_key="observation.images.front", state_key=None, context=1, horizon=1)
    assert ds[0]["frames"].shape == (2, 3, 256, 256) and "state" not in ds[0]
    with pytest.raises(
        ValueError, match="'observation.images.side' is not a video feature or an image feature"
    ):
        LeRobotDataset(root, image_key="observation.images.side")
    with pytest.raises(ValueError, match="'act' is not a feature"):
        LeRobotDataset(root, action_key="act")
    info = json.loads((root / "meta" / "info.json").read_text())
    info["codebase_version"] = "v1.6"
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="v1.6"):
        LeRobotDataset(root)
    with pytest.raises(FileNotFoundError, match="info.json"):
        LeRobotDataset(tmp_path)
