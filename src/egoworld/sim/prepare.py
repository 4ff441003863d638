"""`egoworld sim prepare`: observation-model training clips from recorded egocentric video.

Input: episodes in the EgoDex layout (`egoworld.sim.egodex`: <i>.mp4 + <i>.hdf5 with intrinsics,
camera poses and 3-D hand joints). For each clip of T frames (every `frame_step`-th video frame,
a clip every `stride` video frames) it makes the EgoSim training example (paper §3.2-3.3):

- target: the recorded frames, resized to cover H x W and centre-cropped (`FramePlan`; K follows);
- scene + mask: the state S fused (TSDF, `SceneState`) from the clip's first `fuse_frames` frames
  with metric depth (`egoworld.sim.prepare_depth`) and the hands and forearms left out
  (`egoworld.sim.hand_mask`, from the joints), rendered along the clip's cameras (`render_state`):
  colours, and True where the state does not cover a pixel;
- skeleton: the hand joints (mapped to the 21-keypoint layout) drawn along the same cameras
  (`draw_hand_skeletons`);
- first frame: target[0] (the trainer conditions on it, `ObservationConfig.condition_first_frame`).

Everything is read and checked before anything is written; the output folder is written beside
its final place and renamed when complete (`atomic_dir`), so a failure leaves nothing behind.
The shards' format is `egoworld.sim.prepared`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egoworld.sim.egodex import EgoDexEpisode
from egoworld.sim.hand_mask import HandRadii

logger = logging.getLogger(__name__)

SIZE_MULTIPLE = 16  # the Wan VAE compresses 8x and the DiT patches 2x


@dataclass
class PrepareConfig:
    """How clips are cut and states are built. Args:
    size: (H, W) of the prepared clips, the model's frame size (multiples of 16; the paper: 480, 832).
    frames: T, frames per clip, 4k + 1 (the paper: 61).
    frame_step: video frames between consecutive clip frames (EgoDex is 30 fps; 2 gives 15 fps).
    stride: video frames between the starts of consecutive clips (None: (T - 1) * frame_step, so
        consecutive clips share their boundary frame as in the closed loop).
    fuse_frames: the first F frames of a clip are fused into its state (1: the current view only,
        as `egoworld.sim.loop.observation_clip`).
    voxel_size: TSDF voxel edge in metres (`egoworld.sim.state.EPISODE_VOXEL_SIZE` suits 32-64 px
        synthetic episodes; about 0.005 suits 480p video).
    render: Π, "splat" (as `sim train-observe`) or "raycast".
    min_confidence: hand joints with a lower EgoDex confidence are unknown (not drawn, not masked,
        no depth anchor); 0 keeps every joint.
    clips_per_shard: clips per shard file.
    max_clips: stop after this many clips (None: every clip).
    radii: capsule radii of the hand masks.
    hand_margin_px: pixels the hand masks are dilated by (None: round(min(H, W) / 240), i.e. 0 below
        360 px and 2 at 480 x 832; a pixel is a large share of a hand at 32-64 px).
    """

    size: tuple[int, int]
    frames: int
    frame_step: int = 1
    stride: int | None = None
    fuse_frames: int = 1
    voxel_size: float = 0.03
    render: str = "splat"
    min_confidence: float = 0.0
    clips_per_shard: int = 64
    max_clips: int | None = None
    radii: HandRadii = field(default_factory=HandRadii)
    hand_margin_px: int | None = None

    def validate(self) -> None:
        h, w = (int(s) for s in self.size)
        if h < SIZE_MULTIPLE or w < SIZE_MULTIPLE or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(
                f"--size {h} {w}; expected multiples of {SIZE_MULTIPLE} (the Wan VAE compresses 8x and the "
                "DiT patches 2x), e.g. 480 832"
            )
        if self.frames < 5 or (self.frames - 1) % 4:
            raise ValueError(f"--frames {self.frames}; expected 4k + 1 >= 5 (the Wan layout is 4x in time)")
        if self.frame_step < 1 or (self.stride is not None and self.stride < 1):
            raise ValueError(f"frame step {self.frame_step}, stride {self.stride}; expected integers >= 1")
        if not 1 <= self.fuse_frames <= self.frames:
            raise ValueError(
                f"--fuse-frames {self.fuse_frames}; expected 1 … {self.frames} (the clip length)"
            )
        if not (np.isfinite(self.voxel_size) and 0 < self.voxel_size <= 1):
            raise ValueError(f"--voxel {self.voxel_size}; expected metres in (0, 1]")
        if self.render not in ("splat", "raycast"):
            raise ValueError(f"--render {self.render!r}; expected 'splat' or 'raycast'")
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"--min-confidence {self.min_confidence}; expected in [0, 1]")
        if self.hand_margin_px is not None and not 0 <= self.hand_margin_px <= 64:
            raise ValueError(f"--hand-margin {self.hand_margin_px}; expected 0 … 64 pixels")
        if self.clips_per_shard < 1 or (self.max_clips is not None and self.max_clips < 1):
            raise ValueError(
                f"clips per shard {self.clips_per_shard}, max clips {self.max_clips}; expected >= 1"
            )

    @property
    def margin_px(self) -> int:
        if self.hand_margin_px is not None:
            return int(self.hand_margin_px)
        return int(round(min(self.size) / 240))

    @property
    def span(self) -> int:
        """Video frames one clip covers."""
        return (self.frames - 1) * self.frame_step + 1

    @property
    def clip_stride(self) -> int:
        return self.stride if self.stride is not None else (self.frames - 1) * self.frame_step


@dataclass(frozen=True)
class FramePlan:
    """Resize a [H0, W0] video to cover [H, W] (one scale for both axes), then centre-crop.

    Pixel centres sit at integer coordinates (OpenCV, `egoworld.sim.camera`): a point at u in the
    video is at (u + 0.5)·s_x − 0.5 − x0 after resizing by s_x = W1 / W0 and cropping x0 columns,
    so fx' = s_x·fx and cx' = s_x·(cx + 0.5) − 0.5 − x0 (likewise for y).
    """

    src_hw: tuple[int, int]
    dst_hw: tuple[int, int]

    @property
    def resized_hw(self) -> tuple[int, int]:
        (h0, w0), (h, w) = self.src_hw, self.dst_hw
        s = max(h / h0, w / w0)
        return max(h, int(round(h0 * s))), max(w, int(round(w0 * s)))

    @property
    def crop_yx(self) -> tuple[int, int]:
        (h1, w1), (h, w) = self.resized_hw, self.dst_hw
        return (h1 - h) // 2, (w1 - w) // 2

    def K(self, K: np.ndarray) -> np.ndarray:
        """Intrinsics [3, 3] of the prepared frames."""
        (h0, w0), (h1, w1), (y0, x0) = self.src_hw, self.resized_hw, self.crop_yx
        sx, sy = w1 / w0, h1 / h0
        out = np.array(K, dtype=np.float64)
        out[0, 0], out[0, 1] = K[0, 0] * sx, K[0, 1] * sx
        out[1, 1] = K[1, 1] * sy
        out[0, 2] = (K[0, 2] + 0.5) * sx - 0.5 - x0
        out[1, 2] = (K[1, 2] + 0.5) * sy - 0.5 - y0
        return out

    def _apply(self, image: np.ndarray, interpolation: int) -> np.ndarray:
        import cv2

        (h1, w1), (y0, x0), (h, w) = self.resized_hw, self.crop_yx, self.dst_hw
        if (h1, w1) != tuple(image.shape[:2]):
            image = cv2.resize(image, (w1, h1), interpolation=interpolation)
        return np.ascontiguousarray(image[y0 : y0 + h, x0 : x0 + w])

    def frames(self, frames_THWC: np.ndarray) -> np.ndarray:
        """uint8 [T, H0, W0, 3] → [T, H, W, 3] (area averaging when shrinking, bilinear when growing)."""
        import cv2

        shrink = self.resized_hw[0] < self.src_hw[0]
        mode = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        return np.stack([self._apply(f, mode) for f in frames_THWC])

    def depth(self, depth_THW: np.ndarray) -> np.ndarray:
        """float [T, H0, W0] → [T, H, W] (nearest neighbour: no depth mixed across edges)."""
        import cv2

        return np.stack([self._apply(d.astype(np.float32), cv2.INTER_NEAREST) for d in depth_THW])


@dataclass
class Source:
    """One checked episode: where it is, its length and frame plan (its poses are read again when it
    is cut, so memory does not grow with the number of episodes)."""

    name: str
    video: Path
    hdf5: Path
    frames: int
    plan: FramePlan


def open_episodes(root: Path, config: PrepareConfig, depth: Any) -> list[Source]:
    """Find, read and check every episode (HDF5 keys, video length and size, depth files)."""
    from egoworld.data.video import VideoReader
    from egoworld.sim.egodex import check_in_front, find_episodes, read_episode

    pairs = find_episodes(root)
    if not pairs:
        raise FileNotFoundError(f"no EgoDex episodes under {root}; expected <i>.mp4 + <i>.hdf5 pairs")
    sources = []
    for video, h5 in pairs:
        ep = read_episode(video, h5, root)
        check_in_front(ep, min_confidence=max(config.min_confidence, 0.5))
        with VideoReader(video) as reader:
            n = len(reader)
            if n != len(ep):
                raise ValueError(
                    f"{video} has {n} frames and {h5} {len(ep)} poses; expected one pose per frame"
                )
            h0, w0 = reader.read([0]).shape[1:3]
        if depth.kind == "supplied":
            depth.check(ep.name, len(ep), (h0, w0))
        plan = FramePlan((h0, w0), (int(config.size[0]), int(config.size[1])))
        sources.append(Source(ep.name, video, h5, len(ep), plan))
    return sources


def _clip_hands(ep: EgoDexEpisode, idx: np.ndarray, min_confidence: float) -> np.ndarray:
    hands = ep.hands[idx].copy()  # [T, 2, 21, 3]
    hands[ep.confidence[idx] < min_confidence] = np.nan
    return hands


def _anchors(hands, confidence, K, poses) -> tuple[np.ndarray, np.ndarray]:
    """Pixels [F, 42, 2] and depths [F, 42] of the confident joints (NaN otherwise)."""
    from egoworld.sim.hands import project_keypoints
    from egoworld.sim.prepare_depth import ANCHOR_CONFIDENCE

    F = len(hands)
    uv, z = np.full((F, 42, 2), np.nan), np.full((F, 42), np.nan)
    for f in range(F):
        kp = np.where((confidence[f] >= ANCHOR_CONFIDENCE)[..., None], hands[f], np.nan).reshape(42, 3)
        uv[f], z[f] = project_keypoints(kp, K, poses[f])
    return uv, z


def make_clip(
    ep: EgoDexEpisode, reader: Any, plan: FramePlan, idx: np.ndarray, config: PrepareConfig, depth: Any
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """One training clip at video frames `idx` [T] of `ep` (its video open in `reader`), or None when
    no depth could be fused, and notes on it (estimated depth: each fused frame's alignment)."""
    from egoworld.sim.hand_mask import keypoint_hand_masks
    from egoworld.sim.hands import draw_hand_skeletons
    from egoworld.sim.render import render_state
    from egoworld.sim.state import ESTIMATED_DEPTH_TRUNC_MULTIPLIER, SceneState, StateConfig

    H, W = plan.dst_hw
    K = plan.K(ep.K)
    poses = ep.cam_to_world[idx]
    hands = _clip_hands(ep, idx, config.min_confidence)
    frames = plan.frames(reader.read(idx))  # [T, H, W, 3]
    F = config.fuse_frames
    masks = keypoint_hand_masks(  # every joint, confident or not: a guess masks more than nothing
        ep.hands[idx[:F]],
        K,
        poses[:F],
        H,
        W,
        forearms=ep.forearms[idx[:F]],
        radii=config.radii,
        dilate_px=config.margin_px,
    )
    trunc, notes = None, {}
    if depth.kind == "supplied":
        depth_F = plan.depth(depth.frames(ep.name, idx[:F]))
    else:
        uv, z = _anchors(hands[:F], ep.confidence[idx[:F]], K, poses[:F])
        depth_F, notes["depth_fit"] = depth(frames[:F], uv, z)
        trunc = ESTIMATED_DEPTH_TRUNC_MULTIPLIER
    state = SceneState(StateConfig(voxel_size=config.voxel_size))
    for f in range(F):
        state.integrate(
            frames[f], depth_F[f], K, poses[f], ignore_mask=masks[f], trunc_voxel_multiplier=trunc
        )
    if state.num_blocks == 0:
        return None, notes
    rendering = render_state(state, K, poses, H, W, method=config.render)
    clip = {
        "target": frames,
        "scene": rendering.video,
        "mask": rendering.mask,
        "skeleton": draw_hand_skeletons(hands, K, poses, H, W),
        "K": K,
        "cam_to_world": poses,
        "hand_keypoints": hands.astype(np.float32),
    }
    return clip, notes


def clip_starts(n_frames: int, config: PrepareConfig) -> list[int]:
    """First video frame of every clip that fits in an episode of `n_frames` frames."""
    return list(range(0, n_frames - config.span + 1, config.clip_stride))


def cut_episodes(
    root: Path, sources: list[Source], config: PrepareConfig, depth: Any
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(info, clip or None) for every clip of every episode, in order, one episode open at a time."""
    from egoworld.data.video import VideoReader
    from egoworld.sim.egodex import read_episode

    for source in sources:
        starts = clip_starts(source.frames, config)
        if not starts:
            continue
        ep = read_episode(source.video, source.hdf5, root)
        with VideoReader(source.video) as reader:
            for start in starts:
                idx = start + config.frame_step * np.arange(config.frames)
                clip, notes = make_clip(ep, reader, source.plan, idx, config, depth)
                yield {"episode": source.name, "start": int(start), **notes}, clip


def make_depth_source(depth_dir: str | Path | None, depth_model: str | Path | None, device: str = "cpu"):
    """The depth source of a request: exactly one of a supplied folder and a Depth Anything folder."""
    from egoworld.sim.prepare_depth import EstimatedDepth, SuppliedDepth

    if (depth_dir is None) == (depth_model is None):
        raise ValueError(
            "give exactly one depth source: --depth DIR (metric depth per episode) or --depth-model DIR "
            "(a local Depth Anything folder); EgoDex has no depth"
        )
    return SuppliedDepth(depth_dir) if depth_dir is not None else EstimatedDepth(depth_model, device=device)


def prepare_egodex(
    root: str | Path,
    out: str | Path,
    config: PrepareConfig,
    *,
    depth_dir: str | Path | None = None,
    depth_model: str | Path | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Prepare every clip of the EgoDex episodes under `root` into the folder `out`; returns the manifest.

    `out` must be new, empty or an earlier prepared folder (replaced only when the new one is
    complete). Raises ValueError / FileNotFoundError before writing anything on bad input.
    """
    from tqdm.auto import tqdm

    from egoworld.io_utils import atomic_dir, check_outputs_distinct, check_replaceable
    from egoworld.sim.prepared import MANIFEST, ShardWriter, write_manifest

    config.validate()
    root, out = Path(root), Path(out)
    check_replaceable(out, MANIFEST)
    check_outputs_distinct(
        {"--out": out},
        {"EGODEX_DIR": root, "--depth": depth_dir, "--depth-model": depth_model},
        replaced_folders=["--out"],
    )
    depth = make_depth_source(depth_dir, depth_model, device)
    sources = open_episodes(root, config, depth)
    total = sum(len(clip_starts(s.frames, config)) for s in sources)
    if config.max_clips is not None:
        total = min(total, config.max_clips)
    if total == 0:
        longest = max(s.frames for s in sources)
        raise ValueError(
            f"no clip fits: clips of {config.frames} frames every {config.frame_step} need {config.span} "
            f"video frames; the longest episode under {root} has {longest}"
        )
    clips, skipped = [], 0
    with atomic_dir(out, replaces=MANIFEST) as tmp:
        writer = ShardWriter(tmp, config.clips_per_shard)
        bar = tqdm(total=total, desc="sim prepare", unit="clip", disable=not progress)
        with contextlib.closing(cut_episodes(root, sources, config, depth)) as cut:
            for info, clip in cut:
                bar.update()
                if clip is None:
                    skipped += 1
                    logger.warning(
                        "%s from frame %d: no depth to fuse; clip skipped", info["episode"], info["start"]
                    )
                else:
                    shard, index = writer.add(clip)
                    clips.append({**info, "shard": shard, "index": index})
                if len(clips) + skipped >= total:
                    break
        writer.flush()
        bar.close()
        if not clips:
            raise ValueError(f"every clip under {root} was skipped: no depth could be fused (see --depth)")
        H, W = (int(s) for s in config.size)
        meta = {
            "source": str(root),
            "layout": "egodex",
            "frames": config.frames,
            "height": H,
            "width": W,
            "fps": 30 / config.frame_step,
            "frame_step": config.frame_step,
            "stride": config.clip_stride,
            "fuse_frames": config.fuse_frames,
            "voxel_size": config.voxel_size,
            "render": config.render,
            "min_confidence": config.min_confidence,
            "hand_radii_m": vars(config.radii),
            "hand_margin_px": config.margin_px,
            "depth": "supplied"
            if depth.kind == "supplied"
            else f"estimated ({depth.prediction}, aligned to hands)",
            "episodes": len(sources),
            "skipped_clips": skipped,
            "shards": writer.shards,
            "clips": clips,
        }
        write_manifest(tmp, meta)
    return meta
