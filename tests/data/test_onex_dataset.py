import json

import numpy as np
import pytest
from data_builders import decode_code, onex_states, write_onex

from egoworld.actions.normalization import ActionNormalizer
from egoworld.data.onex import OneXDataset, check_onex


def test_subsampled_clips_stay_inside_segments(onex_root):
    # 30 -> 5 FPS: frame_step 6; 4 frames span 19 raw frames; stride 1 clip frame = 6 raw
    ds = OneXDataset(onex_root, context=1, horizon=3, stride=1, fps=5, resolution=None, output="clip")
    assert ds.spec.frame_step == 6
    # segment 0 (frames 0-35): starts 0, 6, 12 (12 + 18 = 30 <= 35); 18 would need 36
    # segment 1 (frames 36-59, 24 frames): starts 36 (36 + 18 = 54), 42 would need 60
    assert [w[1] for w in ds.windows] == [0, 6, 12, 36]
    for k in range(len(ds)):
        clip = ds[k]
        seg = 0 if clip.frame_indices[0] < 36 else 1
        assert clip.segment == seg
        assert all((i < 36) == (seg == 0) for i in clip.frame_indices)
    clip = ds[3]
    np.testing.assert_array_equal(clip.frame_indices, [36, 42, 48, 54])
    assert decode_code(clip.frames) == [36, 42, 48, 54]


def test_actions_are_state_differences_at_5fps(onex_root):
    ds = OneXDataset(onex_root, context=2, horizon=2, stride=1, fps=5, resolution=16, output="clip")
    clip = ds[1]
    states = onex_states(60, seed=0)
    idx = clip.frame_indices
    np.testing.assert_array_equal(idx, [6, 12, 18, 24])
    np.testing.assert_allclose(clip.state, states[6])
    np.testing.assert_allclose(clip.actions[0], 0)
    np.testing.assert_allclose(clip.actions[1:], np.diff(states[idx], axis=0), atol=1e-6)
    assert clip.frames.shape == (4, 16, 16, 3) and clip.actions.dtype == np.float32
    item = OneXDataset(onex_root, context=1, horizon=1, resolution=8)[0]
    assert item["state"].shape == (25,) and item["frames"].shape == (2, 3, 8, 8)


def test_normalizer_and_stride(onex_root):
    ds = OneXDataset(onex_root, context=1, horizon=1, stride=5, fps=5, resolution=None, output="clip")
    # stride 5 clip frames = 30 raw frames; start 30 would need frame 36 of segment 0
    assert [w[1] for w in ds.windows] == [0, 36]
    norm = ActionNormalizer.fit(ds.all_actions(), meta={"dataset": "1x", "fps": 5.0})
    normed = OneXDataset(
        onex_root, context=1, horizon=1, stride=5, resolution=None, normalizer=norm, output="clip"
    )
    np.testing.assert_allclose(norm.denormalize(normed[0].actions[1:]), ds[0].actions[1:], atol=1e-5)
    with pytest.raises(ValueError, match="fps=5.0, expected 10.0"):
        OneXDataset(onex_root, fps=10, normalizer=norm)


def test_check_finds_every_bad_file(tmp_path):
    root = write_onex(
        tmp_path / "onex", [np.zeros(24, np.int32), np.zeros(24, np.int32), np.zeros(24, np.int32)]
    )
    assert check_onex(root) == []
    # shard 0: states stored as float64 (wrong dtype -> twice the bytes)
    onex_states(24).astype(np.float64).tofile(root / "robot_states" / "states_0.bin")
    # shard 1: truncated segment file, and a corrupt video
    (root / "segment_indices" / "segment_idx_1.bin").write_bytes(b"\0" * 10)
    (root / "videos" / "video_1.mp4").write_bytes(b"\0\0\0\x18ftypmp42 broken")
    # shard 2: metadata says more frames than the video holds
    (root / "metadata" / "metadata_2.json").write_text(json.dumps({"shard_num_frames": 30}))
    onex_states(30).tofile(root / "robot_states" / "states_2.bin")
    np.zeros(30, np.int32).tofile(root / "segment_indices" / "segment_idx_2.bin")
    problems = {(p.path.name, p.reason.split(";")[0].split(" (")[0]) for p in check_onex(root)}
    names = {n for n, _ in problems}
    assert {"states_0.bin", "segment_idx_1.bin", "video_1.mp4", "video_2.mp4"} <= names
    text = "\n".join(str(p) for p in check_onex(root))
    assert "states_0.bin: 4800 bytes, expected 2400 (float32 [24, 25])" in text
    assert "video_2.mp4: 24 video frames, expected 30" in text
    with pytest.raises(ValueError, match=r"states_0.bin: 4800 bytes, expected 2400"):
        OneXDataset(root)


def test_missing_video_refused(onex_root):
    (onex_root / "videos" / "video_0.mp4").unlink()
    with pytest.raises(FileNotFoundError, match="video_0.mp4"):
        OneXDataset(onex_root)


def test_worker_processes_read_clips(onex_root):
    import torch

    ds = OneXDataset(onex_root, context=1, horizon=3, stride=1, resolution=16)
    ds[0]  # open a reader in the parent; workers must not reuse its handle
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert sum(len(b["frames"]) for b in batches) == len(ds) == 4
    assert batches[0]["frames"].shape == (2, 4, 3, 16, 16)
