"""Streaming writers: row-by-row .npy equals np.save; ground truth refuses a wrong frame count."""

from __future__ import annotations

import numpy as np
import pytest

from egoworld.worlds import writers


@pytest.mark.parametrize(
    "dtype, shape", [(np.float32, (5, 7, 3)), (np.uint16, (3, 4, 4)), (np.uint8, (2, 3, 3, 3))]
)
def test_npy_stream_equals_np_save(tmp_path, dtype, shape):
    a = (np.random.default_rng(0).random(shape) * 100).astype(dtype)
    np.save(tmp_path / "a.npy", a)
    stream = writers.NpyStream(tmp_path / "b.npy", dtype, shape)
    for row in a:
        stream.write(row)
    with pytest.raises(ValueError, match="already has"):
        stream.write(a[0])
    stream.close()
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()


def test_ground_truth_writer_checks_frames(tmp_path):
    gt = writers.GroundTruthWriter(
        tmp_path / "gt", 2, (4, 4), np.eye(3), {"1": {"name": "a", "kind": "static"}}
    )
    gt.add(np.ones((4, 4)), np.ones((4, 4), np.int32), np.eye(4))
    with pytest.raises(ValueError, match="got 1 frames; expected 2"):
        gt.close()
    with pytest.raises(ValueError, match="65536"):
        with writers.GroundTruthWriter(tmp_path / "gt2", 1, (2, 2), np.eye(3), {}) as gt2:
            gt2.add(np.ones((2, 2)), np.full((2, 2), 70000), np.eye(4))
