import numpy as np
import pytest
from data_builders import decode_code, flat_frames

from egoworld.data.video import VideoError, VideoReader, write_video


def test_seeks_instead_of_decoding_everything(tmp_path):
    path = write_video(tmp_path / "v.mp4", flat_frames(60), fps=30, gop=10)
    with VideoReader(path) as r:
        assert len(r) == 60 and r.fps == pytest.approx(30)
        frames = r.read([52, 55, 58])
        assert decode_code(frames) == [52, 55, 58]
        assert r.frames_decoded <= 20  # from the keyframe at 50, not from frame 0
        assert decode_code(r.read([3, 3, 0])) == [3, 3, 0]  # any order, repeats, seeking back
    with pytest.raises(VideoError, match="not found"):
        VideoReader(path).read([60])


def test_writer_is_atomic_and_validates(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.float32), 5)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 7, 8, 3), np.uint8), 5)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "bad.mp4").write_bytes(b"garbage")
    with pytest.raises(VideoError, match="cannot open"):
        VideoReader(tmp_path / "bad.mp4").read([0])
