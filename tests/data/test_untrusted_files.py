"""Corrupt or hostile NWM, 1X and video files: each problem is one line naming the file."""

import json
import pickle
import re

import numpy as np
import pytest
from data_builders import jpeg_declaring

from egoworld.cli import main
from egoworld.data.check import check_dataset
from egoworld.data.nwm import NWMDataset, load_trajectory
from egoworld.data.onex import OneXDataset, check_onex
from egoworld.data.video import VideoError, VideoReader


def _nested_shared(levels: int = 30) -> bytes:
    a: list = []
    for _ in range(levels):
        a = [a, a]
    return pickle.dumps({"position": a, "yaw": [0.0]})


def test_pickle_bombs_are_listed_not_loaded(nwm_root, capsys, watchdog):
    (nwm_root / "traj_a" / "traj_data.pkl").write_bytes(_nested_shared())
    (nwm_root / "traj_b" / "traj_data.pkl").write_bytes(
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01"
        b"J\x00\x00\x00\x18\x85q\x02U\x01Oq\x03\x87q\x04Rq\x05."
    )
    with pytest.raises(ValueError, match=r"traj_a/traj_data.pkl: pickle expands to more than \d+ items"):
        load_trajectory(nwm_root / "traj_a")
    with pytest.raises(ValueError, match=r"traj_a/traj_data.pkl: pickle expands .* \(and 1 more; run"):
        NWMDataset(nwm_root)
    assert main(["data", "check", str(nwm_root)]) == 1
    out, err = capsys.readouterr()
    assert "problems: 2" in out and "declares an array of shape (402653184,)" in out and err == ""


@pytest.mark.parametrize(
    "value, message",
    [
        (
            {"position": [["a", "b"]] * 3, "yaw": [0, 1, 2]},
            r"'position' is not an array of numbers .*could not",
        ),
        ({"position": [[1, 1], [2]], "yaw": [0, 1]}, r"'position' is not an array of numbers"),
        ({"position": np.zeros((3, 2)), "yaw": {"a": 1}}, r"'yaw' is not an array of numbers .* yaw angles"),
        ({"position": np.zeros((3, 2)), "yaw": np.full(3, np.nan)}, "contain NaN or inf"),
    ],
)
def test_traj_data_values_one_line(nwm_root, value, message):
    (nwm_root / "traj_a" / "traj_data.pkl").write_bytes(pickle.dumps(value))
    with pytest.raises(ValueError, match=message):
        load_trajectory(nwm_root / "traj_a")
    (nwm_root / "traj_a" / "traj_data.pkl").write_bytes(pickle.dumps({"position": np.zeros((20, 2))})[:25])
    with pytest.raises(ValueError, match="traj_data.pkl: not a readable pickle"):
        load_trajectory(nwm_root / "traj_a")


def test_corrupt_and_oversized_images_name_the_file(nwm_root, watchdog):
    a = nwm_root / "traj_a"
    (a / "3.jpg").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # a broken PNG under a .jpg name
    (a / "5.jpg").write_bytes(jpeg_declaring(9000))
    ds = NWMDataset(nwm_root, context=1, horizon=7, resolution=None)
    with pytest.raises(ValueError, match=r"traj_a/3.jpg: corrupt or unreadable JPEG"):
        ds[0]
    text = "\n".join(map(str, check_dataset(nwm_root).problems))
    assert "traj_a/3.jpg: corrupt or unreadable JPEG" in text
    assert "traj_a/5.jpg: JPEG header declares 9000x9000 pixels; expected at most 8192 a side" in text


def test_split_names_cannot_leave_the_dataset(nwm_root, tmp_path):
    split = tmp_path / "data_splits" / "recon" / "train" / "traj_names.txt"
    split.write_text("traj_a\n../../etc\n")
    with pytest.raises(
        ValueError, match=r"traj_names.txt: trajectory '../../etc': .* outside the dataset folder"
    ):
        NWMDataset(nwm_root, split="train")


@pytest.mark.parametrize(
    "file, content, needle",
    [
        (
            "metadata/metadata_0.json",
            {"shard_num_frames": "60"},
            "'shard_num_frames' is '60'; expected an integer",
        ),
        (
            "metadata/metadata_0.json",
            {"shard_num_frames": -1},
            "'shard_num_frames' is -1; expected an integer >= 0",
        ),
        ("metadata/metadata_0.json", [60], "expected a JSON object, got list"),
        ("metadata.json", {"hz": "30"}, "'hz' is '30'; expected a finite number > 0"),
        ("metadata.json", {"hz": 0}, "'hz' is 0; expected a finite number > 0"),
    ],
)
def test_onex_metadata_values_checked(onex_root, capsys, file, content, needle):
    (onex_root / file).write_text(json.dumps(content))
    with pytest.raises(ValueError, match=re.escape(needle)):
        OneXDataset(onex_root)
    assert any(needle in str(p) for p in check_onex(onex_root))
    assert main(["data", "check", str(onex_root)]) == 1
    assert capsys.readouterr().err == ""


def test_deep_video_check_streams_frames(onex_root):
    assert check_onex(onex_root, deep=True) == []
    with VideoReader(onex_root / "videos" / "video_0.mp4") as r:
        assert r.decode_all() == 60 and r.frames_decoded == 60


def test_video_read_errors_name_the_file(onex_root):
    path = onex_root / "videos" / "video_0.mp4"
    with VideoReader(path) as r:
        for bad in ([-1], [2**70], []):
            with pytest.raises(VideoError, match=r"video_0.mp4: "):
                r.read(bad)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(VideoError, match=r"video_0.mp4: "):
        VideoReader(path).read([0])


def test_video_header_frame_count_is_capped(onex_root, monkeypatch):
    import egoworld.data.untrusted as untrusted

    monkeypatch.setattr(untrusted, "MAX_VIDEO_FRAMES", 50)
    path = onex_root / "videos" / "video_0.mp4"
    with pytest.raises(
        VideoError, match=r"video_0.mp4: header declares 60 frames in a \d+-byte file; expected at most 50"
    ):
        len(VideoReader(path))
    assert "header declares 60 frames" in str(check_onex(onex_root)[0])
    monkeypatch.setattr(untrusted, "MAX_IMAGE_SIDE", 16)  # the shard's frames are 32x32
    with pytest.raises(VideoError, match=r"video_0.mp4: video declares 32x32 frames; expected at most 16"):
        VideoReader(path).read([0])


def test_bad_world_description_is_one_problem(nwm_root):
    (nwm_root / "egoworld_world.json").write_text(json.dumps({"metric_waypoint_spacing": -1}))
    with pytest.raises(ValueError, match=r"egoworld_world.json: 'metric_waypoint_spacing' is -1; expected"):
        NWMDataset(nwm_root)
    (problem,) = check_dataset(nwm_root).problems
    assert (
        problem.path.name == "egoworld_world.json" and "is -1; expected a finite number > 0" in problem.reason
    )
