"""LeRobot datasets written by the official `lerobot` package (tests/fixtures/lerobot, made by
tools/lerobot_fixtures/make_fixtures.py) read frame-exactly against the ground truth the writer was
given (`<name>.truth.json`), never against egoworld's own output.

Video tolerance: lerobot encodes with its defaults (AV1 via libsvtav1, CRF 30, yuv420p), which is
lossy. Each frame is four flat quadrants; inside a quadrant, 2 pixels away from its edges (the
`regions` of the truth file), the measured error was at most 3.0 levels for a region mean and 6 for
a single pixel (tools/lerobot_fixtures/measure_error.py). We allow 6 for a region mean: the top-left
ramp steps 16 levels per frame, so a frame within 6 of frame k is more than 6 away from frames k-1
and k+1 (a wrong frame cannot pass), and 12 for a single pixel. Image-mode frames are PNGs in the
parquet (lossless): compared exactly.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from egoworld.cli import main
from egoworld.data.check import check_dataset
from egoworld.data.lerobot import LeRobotDataset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot"
NAMES = ["v21_video", "v21_image", "v30_video", "v30_image_nostate"]
REGION_MEAN_TOL, PIXEL_TOL = 6.0, 12


def truth(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.truth.json").read_text())


def expected_frame(t: dict, colours: list) -> np.ndarray:
    """uint8 [H, W, 3] picture the writer was given (quadrant colours from the truth file)."""
    img = np.zeros((t["height"], t["width"], 3), np.uint8)
    for (y0, y1, x0, x1), colour in zip(t["quadrants"], colours):
        img[y0:y1, x0:x1] = colour
    return img


def signature(t: dict, frame: np.ndarray) -> np.ndarray:
    """Mean RGB of each quadrant's interior: float [4, 3]."""
    return np.array([frame[y0:y1, x0:x1].reshape(-1, 3).mean(0) for y0, y1, x0, x1 in t["regions"]])


def assert_frame(t: dict, frame: np.ndarray, camera: str, episode: int, k: int) -> None:
    want = t["episodes"][episode]["cameras"][camera][k]
    if not t["use_videos"]:
        np.testing.assert_array_equal(frame, expected_frame(t, want))
        return
    err = np.abs(signature(t, frame) - np.array(want)).max()
    assert err <= REGION_MEAN_TOL, f"{camera} episode {episode} frame {k}: region mean off by {err}"
    for (y0, y1, x0, x1), colour in zip(t["regions"], want):
        assert np.abs(frame[y0:y1, x0:x1].astype(int) - colour).max() <= PIXEL_TOL


@pytest.mark.parametrize("name", NAMES)
def test_every_frame_action_and_state_as_written(name):
    t = truth(name)
    root = FIXTURES / name
    for camera in t["cameras"]:
        ds = LeRobotDataset(root, image_key=camera, context=1, horizon=1, resolution=None, output="clip")
        lengths = [ep["length"] for ep in t["episodes"]]
        assert ds.windows == [(e, s) for e, n in enumerate(lengths) for s in range(n - 1)]
        assert ds.fps == t["fps"] and ds.image_key == camera and ds.state_key == t["state_key"]
        for k in range(len(ds)):
            clip = ds.get_clip(k)
            e, s = ds.windows[k]
            ep = t["episodes"][e]
            assert clip.episode == str(e)
            np.testing.assert_array_equal(clip.frame_indices, [s, s + 1])
            assert_frame(t, clip.frames[0], camera, e, s)
            assert_frame(t, clip.frames[1], camera, e, s + 1)
            # actions[1] is the action recorded at the previous clip frame; exact (float32 as written)
            np.testing.assert_array_equal(clip.actions, np.array([[0.0] * 3, ep["actions"][s]], np.float32))
            if t["state_key"]:
                np.testing.assert_array_equal(clip.state, np.array(ep["states"][s], np.float32))
            else:
                assert clip.state is None


@pytest.mark.parametrize("name", ["v21_video", "v30_image_nostate"])
def test_default_camera_is_the_first_and_cameras_differ(name):
    t = truth(name)
    ds = LeRobotDataset(FIXTURES / name, context=1, horizon=0, resolution=None, output="clip")
    assert ds.image_key == t["cameras"][0] == "observation.images.front"
    wrist = LeRobotDataset(
        FIXTURES / name, image_key=t["cameras"][1], context=1, horizon=0, resolution=None, output="clip"
    )
    front_px, wrist_px = ds.get_clip(0).frames[0, 18, 8], wrist.get_clip(0).frames[0, 18, 8]
    assert front_px[0] > 150 > front_px[2] and wrist_px[2] > 150 > wrist_px[0]  # red front, blue wrist


@pytest.mark.parametrize("name", ["v21_image", "v30_video"])
def test_frame_step_subsamples(name):
    t = truth(name)
    ds = LeRobotDataset(FIXTURES / name, context=1, horizon=2, frame_step=2, resolution=None, output="clip")
    # raw span 5: episode 0 (12 frames) starts at 0, 2, 4, 6; episode 1 (10 frames) at 0, 2, 4
    assert ds.windows == [(0, 0), (0, 2), (0, 4), (0, 6), (1, 0), (1, 2), (1, 4)]
    clip = ds.get_clip(5)
    ep = t["episodes"][1]
    np.testing.assert_array_equal(clip.frame_indices, [2, 4, 6])
    for i, k in enumerate([2, 4, 6]):
        assert_frame(t, clip.frames[i], t["cameras"][0], 1, k)
    np.testing.assert_array_equal(
        clip.actions[1:], np.array([ep["actions"][2], ep["actions"][4]], np.float32)
    )
    np.testing.assert_array_equal(clip.state, np.array(ep["states"][2], np.float32))
    assert clip.meta["fps"] == t["fps"] / 2


def test_state_key_none_and_missing_state():
    ds = LeRobotDataset(FIXTURES / "v30_video", state_key=None, context=1, horizon=1, resolution=16)
    item = ds[0]
    assert "state" not in item and item["frames"].shape == (2, 3, 16, 16)
    nostate = LeRobotDataset(FIXTURES / "v30_image_nostate", context=1, horizon=1, resolution=16)
    assert nostate.state_key is None and "state" not in nostate[0]
    with pytest.raises(ValueError, match="'observation.state' is not a feature"):
        LeRobotDataset(FIXTURES / "v30_image_nostate", state_key="observation.state")


@pytest.mark.parametrize("name", NAMES)
def test_data_check_passes_what_the_loader_reads(name, capsys):
    t = truth(name)
    for deep in (False, True):
        report = check_dataset(FIXTURES / name, deep=deep)
        assert report.ok, report.lines()
    keys = report.summary["video_keys" if t["use_videos"] else "image_keys"]
    assert keys == t["cameras"] and report.summary["frames"] == sum(ep["length"] for ep in t["episodes"])
    for camera in t["cameras"]:
        assert len(LeRobotDataset(FIXTURES / name, image_key=camera, context=1, horizon=1)) > 0
    assert main(["data", "check", str(FIXTURES / name)]) == 0
    assert "problems: 0" in capsys.readouterr().out


def _copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def _edit_info(root: Path, edit) -> None:
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("v30_image_nostate", lambda i: i["features"].pop("action"), "action"),
        ("v21_video", lambda i: i["features"].pop("action"), "action"),
        ("v21_image", lambda i: i.update(codebase_version="v1.6"), "v1.6"),
        (
            "v30_video",
            lambda i: [
                i["features"].pop(k) for k in ("observation.images.front", "observation.images.wrist")
            ],
            "no video or image feature",
        ),
    ],
)
def test_data_check_refuses_what_the_loader_refuses(tmp_path, name, damage, message):
    root = _copy(name, tmp_path)
    _edit_info(root, damage)
    with pytest.raises(ValueError, match=message):
        LeRobotDataset(root)
    assert any(message in str(p) for p in check_dataset(root).problems)


def test_missing_video_or_image_column_refused_by_both(tmp_path):
    import pyarrow.parquet as pq

    root = _copy("v30_video", tmp_path)
    video = root / "videos" / "observation.images.wrist" / "chunk-000" / "file-000.mp4"
    video.unlink()
    with pytest.raises(ValueError, match="file-000.mp4: video file not found"):
        LeRobotDataset(root, image_key="observation.images.wrist")
    assert [p.path for p in check_dataset(root).problems] == [video]
    root = _copy("v21_image", tmp_path)
    f = root / "data" / "chunk-000" / "episode_000001.parquet"
    pq.write_table(pq.read_table(f).drop(["observation.images.wrist"]), f)
    with pytest.raises(ValueError, match="episode_000001.parquet: no column 'observation.images.wrist'"):
        LeRobotDataset(root, image_key="observation.images.wrist")
    problems = check_dataset(root).problems
    assert [p.path for p in problems] == [f] and "no column 'observation.images.wrist'" in problems[0].reason


def test_stats_of_a_dataset_without_state(tmp_path, capsys):
    t = truth("v30_image_nostate")
    out = tmp_path / "stats.json"
    assert main(["data", "stats", str(FIXTURES / "v30_image_nostate"), "--out", str(out)]) == 0
    stats = json.loads(out.read_text())
    actions = np.concatenate([np.array(ep["actions"], np.float32) for ep in t["episodes"]])
    assert stats["count"] == len(actions) and stats["meta"]["action_key"] == "action"
    np.testing.assert_allclose(stats["mean"], actions.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats["std"], actions.std(0), rtol=1e-5, atol=1e-6)
    assert "3-D meanstd statistics from 22 actions" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["v21_image", "v30_video"])
def test_dataset_travels_to_loader_workers(name):
    import pickle

    ds = LeRobotDataset(FIXTURES / name, context=1, horizon=1, resolution=None, output="clip")
    first = ds.get_clip(3).frames  # opens a video reader / keeps a parquet row group
    copy = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker receives (handles dropped)
    np.testing.assert_array_equal(copy.get_clip(3).frames, first)
