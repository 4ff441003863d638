"""Training honours NWM's split files: the test trajectories are never trained on unless asked for; the
statistics of poses relative to a chunk's first frame also record the range of one step."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from egoworld.data.factory import _open
from egoworld.model_config import WorldModelConfig
from egoworld.train_config import DataConfig

MODEL = WorldModelConfig(num_frames=4, height=8, width=8)


def names(ds) -> set[str]:
    return {t["name"] for t in ds.trajectories}


def test_default_split_is_train_when_the_dataset_has_one(nwm_root):
    ds = _open(DataConfig(format="nwm", path=str(nwm_root)), MODEL, None)
    assert names(ds) == {"traj_a"}  # traj_b is the test split
    everything = _open(DataConfig(format="nwm", path=str(nwm_root), split=None), MODEL, None)
    assert names(everything) == {"traj_a", "traj_b"}
    test = _open(DataConfig(format="nwm", path=str(nwm_root), split="test"), MODEL, None)
    assert names(test) == {"traj_b"}


def test_without_split_files_every_trajectory_is_used_with_a_warning(nwm_root, caplog):
    shutil.rmtree(nwm_root.parent / "data_splits")
    ds = _open(DataConfig(format="nwm", path=str(nwm_root)), MODEL, None)
    assert names(ds) == {"traj_a", "traj_b"}
    assert "training on every trajectory" in caplog.text


def test_state_width_mismatch_is_caught_before_training(onex_root):
    import pytest

    from egoworld.actions.normalization import ActionNormalizer
    from egoworld.data.factory import build_datasets

    data = DataConfig(format="onex", path=str(onex_root))
    identity = ActionNormalizer.fit([np.zeros((2, 25)), np.ones((2, 25))])
    with pytest.raises(ValueError, match="carry a 25-dim state; model.state_dim=None"):
        build_datasets(data, WorldModelConfig(action_dim=25, num_frames=4, height=8, width=8), identity)
    train, _ = build_datasets(
        data, WorldModelConfig(action_dim=25, state_dim=25, num_frames=4, height=8, width=8), identity
    )
    assert train[0]["state"].shape == (25,)


def test_lerobot_options_reach_the_reader(tmp_path):
    import json

    import pytest

    from tests.data.data_builders import write_lerobot

    root = write_lerobot(tmp_path / "lr", [20, 16])
    model = WorldModelConfig(action_dim=2, num_frames=4, height=8, width=8)
    every = _open(DataConfig(format="lerobot", path=str(root)), model, None)
    sparse = _open(DataConfig(format="lerobot", path=str(root), frame_step=2), model, None)
    assert sparse.spec.frame_step == 2 and len(sparse) < len(every)
    assert every.state_key == "observation.state"  # "auto" finds the state
    with pytest.raises(ValueError, match="image_key 'observation.images.side' is not a video feature"):
        _open(DataConfig(format="lerobot", path=str(root), image_key="observation.images.side"), model, None)
    with pytest.raises(ValueError, match="'act' is not a feature"):
        _open(DataConfig(format="lerobot", path=str(root), action_key="act"), model, None)
    info = json.loads((root / "meta" / "info.json").read_text())
    del info["features"]["observation.state"]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    assert _open(DataConfig(format="lerobot", path=str(root)), model, None).state_key is None


def test_data_check_refuses_what_the_loader_refuses(tmp_path):
    import json

    from egoworld.data.check import check_dataset
    from egoworld.data.lerobot import LeRobotDataset
    from tests.data.data_builders import write_lerobot

    root = write_lerobot(tmp_path / "lr", [12])
    assert not check_dataset(root).problems
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["observation.images.front"]["dtype"] = "image"  # image mode: frames in parquet
    (root / "meta" / "info.json").write_text(json.dumps(info))
    problems = [p.reason for p in check_dataset(root).problems]
    assert any("no column 'observation.images.front'" in r for r in problems), problems
    with pytest.raises(ValueError, match="no column 'observation.images.front'"):
        LeRobotDataset(root)


def test_onex_frame_step_is_honoured(onex_root):
    paper = _open(DataConfig(format="onex", path=str(onex_root)), MODEL, None)
    assert paper.hz / paper.spec.frame_step == 5.0  # default: the paper's 5 fps
    stepped = _open(DataConfig(format="onex", path=str(onex_root), frame_step=3), MODEL, None)
    assert stepped.spec.frame_step == 3 and stepped.fps == paper.hz / 3
    clip = stepped[0]
    assert clip["actions"].shape[0] == MODEL.num_frames


@pytest.mark.parametrize("mirror", [False, True])
def test_cumulative_statistics_record_the_range_of_one_step(nwm_root, mirror):
    """Poses relative to the chunk's first frame span whole chunks, so the statistics also record one
    step's range: that of the same data read as per-step deltas (the reference), both signs of the
    lateral and yaw dims when the clips are also trained mirrored."""
    from egoworld.data.factory import fit_one

    data = DataConfig(format="nwm", path=str(nwm_root), action_mode="cumulative", mirror=mirror)
    cumulative = fit_one(data, MODEL)[0]
    deltas = fit_one(DataConfig(format="nwm", path=str(nwm_root)), MODEL)[0]
    assert "step_min" not in deltas.meta  # per-step statistics are their own step range
    lo, hi = np.asarray(deltas.min), np.asarray(deltas.max)
    if mirror:
        lo[1:], hi[1:] = np.minimum(lo[1:], -hi[1:]), np.maximum(hi[1:], -lo[1:])
    np.testing.assert_allclose(cumulative.meta["step_min"], lo, rtol=1e-6)
    np.testing.assert_allclose(cumulative.meta["step_max"], hi, rtol=1e-6)
    assert np.all(np.asarray(cumulative.max) > hi)  # a chunk goes further than a step


def test_worlds_nav_is_generated_on_first_use_and_read_with_its_name_and_spacing(tmp_path):
    from egoworld.worlds import nav

    data = DataConfig(format="worlds-nav", path=str(tmp_path / "nav"), episodes=2, frames_per_episode=6)
    model = WorldModelConfig(num_frames=4, height=16, width=16)  # the worlds' smallest size
    ds = _open(data, model, None)
    assert (tmp_path / "nav" / "egoworld_world.json").is_file()
    assert ds.dataset_name == nav.DATASET_NAME and ds.spacing == nav.SPACING
    again = _open(data, model, None)  # the second time the folder is used as it is
    assert names(again) == names(ds) and len(again) == len(ds) > 0
