"""Builders that write tiny datasets laid out exactly like the originals.

Frame k of every synthetic video/trajectory is a flat colour with value `code(k)`, so a test
can tell which raw frame it got back (`decode_code`) despite lossy JPEG/H.264.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from egoworld.data.video import write_video

SIZE = 32


def code(k: int) -> int:
    return (4 * k) % 256


def decode_code(frames: np.ndarray) -> list[int]:
    """Recover frame numbers (k < 64) from flat frames [T, H, W, 3]."""
    return [int(round(float(f[..., 0].mean()) / 4)) for f in frames]


def flat_frames(n: int, size: int = SIZE, start: int = 0) -> np.ndarray:
    out = np.zeros((n, size, size, 3), np.uint8)
    for k in range(n):
        out[k] = code(start + k)
    return out


def jpeg_bytes(img: np.ndarray) -> bytes:
    ok, enc = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return enc.tobytes()


def circle_poses(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A robot driving round a circle: yaw crosses +-pi once."""
    th = np.linspace(0, 1.6 * np.pi, n)
    position = np.stack([np.cos(th), np.sin(th)], axis=-1) * 2.0
    yaw = (th + np.pi / 2 + np.pi) % (2 * np.pi) - np.pi
    return position, yaw


def write_nwm_traj(d: Path, position: np.ndarray, yaw: np.ndarray, n_images: int | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    n = len(yaw) if n_images is None else n_images
    for k, img in enumerate(flat_frames(n)):
        (d / f"{k}.jpg").write_bytes(jpeg_bytes(img))
    with open(d / "traj_data.pkl", "wb") as f:
        pickle.dump({"position": position, "yaw": yaw}, f)
    return d


def write_recon_h5(path: Path, n: int, *, jpeg: bool = True, n_images: int | None = None) -> Path:
    pos, yaw = circle_poses(n)
    frames = flat_frames(n if n_images is None else n_images)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        if jpeg:
            ds = f.create_dataset("images/rgb_left", (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
            for k, img in enumerate(frames):
                ds[k] = np.frombuffer(jpeg_bytes(img), np.uint8)
        else:
            f.create_dataset("images/rgb_left", data=frames)
        f.create_dataset("jackal/position", data=np.concatenate([pos, np.zeros((n, 1))], axis=1))
        f.create_dataset("jackal/yaw", data=yaw)
    return path


def onex_states(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, 0.1, (n, 25)), axis=0).astype(np.float32)


def write_onex(root: Path, segments: list[np.ndarray], hz: int = 30, gop: int = 12) -> Path:
    """One shard per entry of `segments` (int32 [N] segment ids each)."""
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    for sub in ("videos", "robot_states", "segment_indices"):
        (root / sub).mkdir(exist_ok=True)
    (root / "metadata.json").write_text(json.dumps({"hz": hz, "num_shards": len(segments)}))
    for i, seg in enumerate(segments):
        n = len(seg)
        write_video(root / "videos" / f"video_{i}.mp4", flat_frames(n), hz, gop=gop)
        onex_states(n, seed=i).tofile(root / "robot_states" / f"states_{i}.bin")
        np.asarray(seg, np.int32).tofile(root / "segment_indices" / f"segment_idx_{i}.bin")
        (root / "metadata" / f"metadata_{i}.json").write_text(json.dumps({"shard_num_frames": n, "hz": hz}))
    return root


def _features(state_dim: int, action_dim: int) -> dict:
    return {
        "observation.images.front": {"dtype": "video", "shape": [SIZE, SIZE, 3], "names": ["h", "w", "c"]},
        "observation.state": {"dtype": "float32", "shape": [state_dim], "names": None},
        "action": {"dtype": "float32", "shape": [action_dim], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
    }


def lerobot_actions(e: int, n: int) -> np.ndarray:
    return (100 * e + np.arange(n, dtype=np.float32))[:, None] * np.array([1, -1], np.float32)


def _episode_table(e: int, n: int, start_index: int, fps: int) -> pa.Table:
    acts = lerobot_actions(e, n)
    states = acts[:, :1] * 0.5 + np.arange(3, dtype=np.float32)
    return pa.table(
        {
            "observation.state": pa.array(list(states), type=pa.list_(pa.float32())),
            "action": pa.array(list(acts), type=pa.list_(pa.float32())),
            "timestamp": pa.array(np.arange(n, dtype=np.float32) / fps),
            "frame_index": pa.array(np.arange(n, dtype=np.int64)),
            "episode_index": pa.array(np.full(n, e, dtype=np.int64)),
            "index": pa.array(start_index + np.arange(n, dtype=np.int64)),
            "task_index": pa.array(np.zeros(n, dtype=np.int64)),
        }
    )


def write_lerobot(root: Path, lengths: list[int], version: str = "v2.1", fps: int = 10) -> Path:
    """A LeRobotDataset with one video key; episode e's frame k shows code(k + 10 e)."""
    (root / "meta").mkdir(parents=True)
    key = "observation.images.front"
    info = {
        "codebase_version": version,
        "robot_type": "test",
        "fps": fps,
        "total_episodes": len(lengths),
        "total_frames": int(sum(lengths)),
        "chunks_size": 1000,
        "features": _features(3, 2),
    }
    if version.startswith("v2"):
        info["data_path"] = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        info["video_path"] = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
        lines, start = [], 0
        for e, n in enumerate(lengths):
            p = root / info["data_path"].format(episode_chunk=0, episode_index=e)
            p.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(_episode_table(e, n, start, fps), p)
            write_video(
                root / info["video_path"].format(episode_chunk=0, video_key=key, episode_index=e),
                flat_frames(n, start=10 * e),
                fps,
                gop=5,
            )
            lines.append(json.dumps({"episode_index": e, "tasks": ["drive"], "length": n}))
            start += n
        (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    else:
        info["data_path"] = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
        info["video_path"] = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
        tables, videos, rows, start = [], [], [], 0
        for e, n in enumerate(lengths):
            tables.append(_episode_table(e, n, start, fps))
            videos.append(flat_frames(n, start=10 * e))
            rows.append(
                {
                    "episode_index": e,
                    "length": n,
                    "data/chunk_index": 0,
                    "data/file_index": 0,
                    "dataset_from_index": start,
                    "dataset_to_index": start + n,
                    f"videos/{key}/chunk_index": 0,
                    f"videos/{key}/file_index": 0,
                    f"videos/{key}/from_timestamp": start / fps,
                    f"videos/{key}/to_timestamp": (start + n) / fps,
                }
            )
            start += n
        p = root / info["data_path"].format(chunk_index=0, file_index=0)
        p.parent.mkdir(parents=True)
        pq.write_table(pa.concat_tables(tables), p)
        write_video(
            root / info["video_path"].format(video_key=key, chunk_index=0, file_index=0),
            np.concatenate(videos),
            fps,
            gop=5,
        )
        ep = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
        ep.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), ep)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    return root


def jpeg_declaring(side: int) -> bytes:
    """A valid 32x32 JPEG whose header is patched to declare side x side pixels (a tiny "bomb")."""
    data = bytearray(jpeg_bytes(flat_frames(1)[0]))
    sof = data.index(b"\xff\xc0")  # baseline start-of-frame: length(2) precision(1) height(2) width(2)
    data[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    return bytes(data)
