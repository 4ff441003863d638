"""`egoworld sim prepare`: observation-model training clips from recorded egocentric video.

Input, one of two layouts (`LAYOUTS`; "auto" tells them apart by the file beside each video):

- EgoDex (`egoworld.sim.egodex`): <i>.mp4 + <i>.hdf5 with intrinsics, camera poses and 3-D hand
  joints in world coordinates;
- plain (`egoworld.sim.plain_video`): <name>.mp4 + <name>.npz with intrinsics, 3-D hand joints in
  each frame's camera coordinates and, optionally, camera poses. Without poses they are estimated
  (`estimate_poses`: Open3D RGB-D odometry over the episode's depth frames, hands masked out).

Both become the same record (`egoworld.sim.egodex.HandEpisode`: K, camera-to-world poses, hands in
world coordinates), and from there one path cuts the clips. For each clip of T frames (every
`frame_step`-th video frame, a clip every `stride` video frames) it makes the EgoSim training
example (paper §3.2-3.3):

- target: the recorded frames, resized to cover H x W and centre-cropped (`FramePlan`; K follows);
- scene + mask: the state S fused (TSDF, `SceneState`) from the clip's first `fuse_frames` frames
  with metric depth (`egoworld.sim.prepare_depth`) and the hands and forearms left out
  (`egoworld.sim.hand_mask`, from the joints), rendered along the clip's cameras (`render_state`):
  colours, and True where the state does not cover a pixel;
- skeleton: the hand joints (mapped to the 21-keypoint layout) drawn along the same cameras
  (`draw_hand_skeletons`);
- first frame: target[0] (the trainer conditions on it, `ObservationConfig.condition_first_frame`);
- prompt: the episode's description (`egoworld.sim.episode_prompts`), in the manifest (each clip of
  an episode gets the episode's; none when its files have none).

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

from egoworld.sim.egodex import HandEpisode
from egoworld.sim.hand_mask import HandRadii
from egoworld.sim.plain_video import PlainEpisode

logger = logging.getLogger(__name__)

SIZE_MULTIPLE = 16  # the Wan VAE compresses 8x and the DiT patches 2x
LAYOUTS = ("egodex", "plain")
ESTIMATED_POSES = "estimated (Open3D RGB-D odometry)"


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
    odometry_side: plain layout without poses: the odometry runs on the whole video frame scaled
        down (never up) to this many pixels on its short side.
    odometry_keyframe_every: plain layout without poses: frames registered to one keyframe before
        the next keyframe is taken (`estimate_poses`; 15 = half a second at 30 fps).
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
    odometry_side: int = 480
    odometry_keyframe_every: int = 15

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
        if self.odometry_side < SIZE_MULTIPLE or self.odometry_keyframe_every < 1:
            raise ValueError(
                f"odometry side {self.odometry_side}, keyframe every {self.odometry_keyframe_every}; "
                f"expected >= {SIZE_MULTIPLE} pixels and >= 1 frame"
            )
        if self.clips_per_shard < 1 or (self.max_clips is not None and self.max_clips < 1):
            raise ValueError(
                f"clips per shard {self.clips_per_shard}, max clips {self.max_clips}; expected >= 1"
            )

    @property
    def margin_px(self) -> int:
        """Hand mask dilation at the clip size."""
        return self.margin_at(self.size)

    def margin_at(self, size_hw: tuple[int, int]) -> int:
        """Hand mask dilation in pixels for frames of `size_hw`."""
        if self.hand_margin_px is not None:
            return int(self.hand_margin_px)
        return int(round(min(size_hw) / 240))

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

    @classmethod
    def whole(cls, src_hw: tuple[int, int], short_side: int) -> FramePlan:
        """The whole frame scaled down (never up) to `short_side` pixels on its short side."""
        h0, w0 = src_hw
        s = min(1.0, short_side / min(h0, w0))
        return cls((h0, w0), (max(1, int(round(h0 * s))), max(1, int(round(w0 * s)))))

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
    """One checked episode: where it is, its layout, length and frame plan (its poses and hands are
    read again when it is cut, so memory does not grow with the number of episodes).

    `sidecar` is the file beside the video (.hdf5 for EgoDex, .npz for plain); `poses` is "supplied"
    or "estimated" (a plain episode without cam_to_world); `fps` the video's frame rate."""

    name: str
    video: Path
    sidecar: Path
    frames: int
    plan: FramePlan
    layout: str = "egodex"
    poses: str = "supplied"
    fps: float = 30.0


def detect_layout(root: Path, skip=()) -> str:
    """The layout of the episodes under `root`, "egodex" or "plain", from the files beside the
    videos (.hdf5 / .npz).

    Raises FileNotFoundError when there is no video (nor .hdf5 / .npz), ValueError when a video has
    neither file beside it or when the folder holds both layouts."""
    from egoworld.sim.egodex import scan_files

    found = scan_files(root, (".mp4", ".hdf5", ".npz"), skip)
    videos = found[".mp4"]
    if not videos and (found[".hdf5"] or found[".npz"]):  # the layout's reader names the lone file
        return "egodex" if found[".hdf5"] else "plain"
    if not videos:
        raise FileNotFoundError(
            f"no EgoDex episodes (<i>.mp4 + <i>.hdf5) or plain-layout episodes (<name>.mp4 + <name>.npz) "
            f"under {root}"
        )
    kinds: dict[str, Path] = {}
    for stem, video in videos.items():
        if stem in found[".hdf5"]:
            kinds.setdefault("egodex", video)
        elif stem in found[".npz"]:
            kinds.setdefault("plain", video)
        else:
            raise ValueError(
                f"video {video} has no poses: expected {stem.with_suffix('.hdf5')} (EgoDex layout) or "
                f"{stem.with_suffix('.npz')} (plain layout) beside it"
            )
    if len(kinds) > 1:
        raise ValueError(
            f"{root} mixes layouts: {kinds['egodex']} has an .hdf5 beside it (EgoDex) and "
            f"{kinds['plain']} an .npz (plain); expected one layout per folder (prepare them separately, "
            "or pick one with --layout)"
        )
    return next(iter(kinds))


def find_pairs(root: Path, layout: str, skip=()) -> list[tuple[Path, Path]]:
    """(video, sidecar) pairs of `layout` ("egodex" | "plain") under `root`; FileNotFoundError if none."""
    from egoworld.sim import egodex, plain_video

    if layout == "egodex":
        pairs = egodex.find_episodes(root, skip)
        expected = "<i>.mp4 + <i>.hdf5 pairs"
    else:
        pairs = plain_video.find_episodes(root, skip)
        expected = "<name>.mp4 + <name>.npz pairs"
    if not pairs:
        what = "EgoDex episodes" if layout == "egodex" else "plain-layout episodes"
        raise FileNotFoundError(f"no {what} under {root}; expected {expected}")
    return pairs


def _open_one(layout: str, video: Path, sidecar: Path, root: Path, config: PrepareConfig) -> Source:
    """Read and check one episode's sidecar file against its video."""
    from egoworld.data.video import VideoReader
    from egoworld.sim import egodex, plain_video

    if layout == "egodex":
        ep = egodex.read_episode(video, sidecar, root)
        egodex.check_in_front(ep, min_confidence=max(config.min_confidence, 0.5))
        poses = "supplied"
    else:
        ep = plain_video.read_episode(video, sidecar, root)
        plain_video.check_in_front(ep, min_confidence=max(config.min_confidence, 0.5))
        poses = "supplied" if ep.cam_to_world is not None else "estimated"
    with VideoReader(video) as reader:
        n, fps = len(reader), reader.fps
        h0, w0 = reader.read([0]).shape[1:3]
    if n != len(ep):
        if layout == "egodex":
            raise ValueError(
                f"{video} has {n} frames and {sidecar} {len(ep)} poses; expected one pose per frame"
            )
        raise ValueError(
            f"{sidecar}: hands has {len(ep)} frames; expected {n}, one per frame of {video}"
            + (" (and as many cam_to_world poses)" if poses == "supplied" else "")
        )
    plan = FramePlan((h0, w0), (int(config.size[0]), int(config.size[1])))
    return Source(ep.name, video, sidecar, n, plan, layout, poses, fps)


def open_episodes(
    root: Path, config: PrepareConfig, depth: Any, layout: str = "egodex", skip=()
) -> list[Source]:
    """Find, read and check every episode of `layout` (sidecar keys, video length and size, depth files)."""
    sources = [_open_one(layout, v, f, root, config) for v, f in find_pairs(root, layout, skip)]
    for source in sources:
        if depth.kind == "supplied":
            depth.check(source.name, source.frames, source.plan.src_hw)
    return sources


def _clip_hands(ep: HandEpisode, idx: np.ndarray, min_confidence: float) -> np.ndarray:
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


def metric_depth(
    name: str,
    idx: np.ndarray,
    frames_FHWC: np.ndarray,
    plan: FramePlan,
    K: np.ndarray,
    hands: np.ndarray,
    confidence: np.ndarray,
    poses: np.ndarray,
    depth: Any,
) -> tuple[np.ndarray, list[dict] | None]:
    """Metric depth [F, H, W] of video frames `idx` [F] of episode `name`, at the plan's size.

    Supplied depth is read and resized (fits: None). Estimated depth runs the model on
    `frames_FHWC` [F, H, W, 3] (already planned, intrinsics `K`) and aligns each frame to the joints
    `hands` [F, 2, 21, 3] with `confidence` [F, 2, 21] seen from `poses` [F, 4, 4] (fits: one dict
    per frame)."""
    if depth.kind == "supplied":
        return plan.depth(depth.frames(name, idx)), None
    uv, z = _anchors(hands, confidence, K, poses)
    return depth(frames_FHWC, uv, z)


def make_clip(
    ep: HandEpisode, reader: Any, plan: FramePlan, idx: np.ndarray, config: PrepareConfig, depth: Any
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
    depth_F, fits = metric_depth(
        ep.name, idx[:F], frames[:F], plan, K, hands[:F], ep.confidence[idx[:F]], poses[:F], depth
    )
    notes = {} if fits is None else {"depth_fit": fits}
    trunc = None if fits is None else ESTIMATED_DEPTH_TRUNC_MULTIPLIER
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


def estimate_poses(
    ep: PlainEpisode, reader: Any, src_hw: tuple[int, int], config: PrepareConfig, depth: Any
) -> np.ndarray:
    """Camera-to-world poses [N, 4, 4] of a plain-layout episode without poses (its video of
    [H0, W0] = `src_hw` frames open in `reader`), in the camera frame of its first video frame.

    Open3D RGB-D odometry (`egoworld.metrics.geometry.Open3DOdometry`, hybrid term) on the whole
    frames scaled to `config.odometry_side` on the short side, with the episode's depth (supplied,
    or estimated and aligned to the hand joints, which are in camera coordinates here) and the hand
    pixels' depth set to unknown (`keypoint_hand_masks`, so the moving hands do not pull the camera).
    Frames are registered to a keyframe (`reference="first"`) in windows of
    `config.odometry_keyframe_every` frames; the last frame of a window is the next keyframe. The
    poses have the depth's scale: metres with metric depth. A frame the odometry cannot register
    keeps the previous frame's pose (logged).
    """
    from egoworld.metrics.geometry import Open3DOdometry
    from egoworld.sim.hand_mask import keypoint_hand_masks

    n = len(ep)
    plan = FramePlan.whole(src_hw, config.odometry_side)
    K, (H, W) = plan.K(ep.K), plan.dst_hw
    eye = np.tile(np.eye(4), (n, 1, 1))  # the hands are in camera coordinates
    odometry = Open3DOdometry(reference="first")
    poses = eye.copy()
    step = config.odometry_keyframe_every
    for start in range(0, n - 1, step):
        idx = np.arange(start, min(start + step, n - 1) + 1)  # the keyframe, then up to `step` frames
        frames = plan.frames(reader.read(idx))
        depth_F, _ = metric_depth(
            ep.name, idx, frames, plan, K, ep.hands_cam[idx], ep.confidence[idx], eye[idx], depth
        )
        hand = keypoint_hand_masks(
            ep.hands_cam[idx], K, eye[idx], H, W, radii=config.radii, dilate_px=config.margin_at((H, W))
        )
        depth_F = np.where(hand, 0.0, depth_F).astype(np.float32)
        poses[idx[1:]] = poses[start] @ odometry(frames, depth_F, K)[1:]
    return poses


def load_episode(source: Source, root: Path, reader: Any, config: PrepareConfig, depth: Any) -> HandEpisode:
    """The layout-neutral record of a checked episode (its video open in `reader`); a plain episode
    without poses gets them from `estimate_poses`."""
    from egoworld.sim import egodex, plain_video

    if source.layout == "egodex":
        return egodex.read_episode(source.video, source.sidecar, root)
    ep = plain_video.read_episode(source.video, source.sidecar, root)
    if ep.cam_to_world is None:
        logger.info("%s: estimating camera poses (Open3D RGB-D odometry)", ep.name)
        return ep.with_poses(estimate_poses(ep, reader, source.plan.src_hw, config, depth))
    return ep.with_poses(ep.cam_to_world)


def clip_starts(n_frames: int, config: PrepareConfig) -> list[int]:
    """First video frame of every clip that fits in an episode of `n_frames` frames."""
    return list(range(0, n_frames - config.span + 1, config.clip_stride))


def cut_episodes(
    root: Path, sources: list[Source], config: PrepareConfig, depth: Any
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(info, clip or None) for every clip of every episode, in order, one episode open at a time;
    info["prompt"] is the episode's prompt (str or None)."""
    from egoworld.data.video import VideoReader

    for source in sources:
        starts = clip_starts(source.frames, config)
        if not starts:
            continue
        with VideoReader(source.video) as reader:
            ep = load_episode(source, root, reader, config, depth)
            for start in starts:
                idx = start + config.frame_step * np.arange(config.frames)
                clip, notes = make_clip(ep, reader, source.plan, idx, config, depth)
                yield {"episode": source.name, "start": int(start), "prompt": ep.prompt, **notes}, clip


def make_depth_source(depth_dir: str | Path | None, depth_model: str | Path | None, device: str = "cpu"):
    """The depth source of a request: exactly one of a supplied folder and a Depth Anything folder."""
    from egoworld.sim.prepare_depth import EstimatedDepth, SuppliedDepth

    if (depth_dir is None) == (depth_model is None):
        raise ValueError(
            "give exactly one depth source: --depth DIR (metric depth per episode) or --depth-model DIR "
            "(a local Depth Anything folder); the recorded video has no depth"
        )
    return SuppliedDepth(depth_dir) if depth_dir is not None else EstimatedDepth(depth_model, device=device)


def _poses_note(sources: list[Source]) -> str:
    """The manifest's "poses": "supplied", `ESTIMATED_POSES`, or how many episodes had which."""
    estimated = sum(s.poses == "estimated" for s in sources)
    if estimated == 0:
        return "supplied"
    if estimated == len(sources):
        return ESTIMATED_POSES
    return f"supplied for {len(sources) - estimated} episodes, {ESTIMATED_POSES} for {estimated}"


def _fps(sources: list[Source], layout: str, root: Path) -> float:
    """The episodes' frame rate (EgoDex: `egodex.FPS`; plain: the videos', which must agree)."""
    from egoworld.sim.egodex import FPS

    if layout == "egodex":
        return float(FPS)
    rates = sorted({round(s.fps, 3) for s in sources})
    if len(rates) > 1:
        raise ValueError(
            f"the videos under {root} have different frame rates {rates}; expected one rate per prepared "
            "folder (prepare them separately)"
        )
    return float(rates[0])


def prepare_videos(
    root: str | Path,
    out: str | Path,
    config: PrepareConfig,
    *,
    layout: str = "auto",
    depth_dir: str | Path | None = None,
    depth_model: str | Path | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Prepare every clip of the episodes under `root` into the folder `out`; returns the manifest.

    `layout` is "egodex", "plain" or "auto" (`detect_layout`). `out` must be new, empty or an
    earlier prepared folder (replaced only when the new one is complete). Raises ValueError /
    FileNotFoundError before writing anything on bad input.
    """
    from tqdm.auto import tqdm

    from egoworld.io_utils import atomic_dir, check_outputs_distinct, check_replaceable
    from egoworld.sim.prepared import MANIFEST, PromptTable, ShardWriter, clip_entry, write_manifest

    config.validate()
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"--layout {layout!r}; expected 'auto', 'egodex' or 'plain'")
    root, out = Path(root), Path(out)
    check_replaceable(out, MANIFEST)
    check_outputs_distinct(
        {"--out": out},
        {"DIR": root, "--depth": depth_dir, "--depth-model": depth_model},
        replaced_folders=["--out"],
    )
    depth = make_depth_source(depth_dir, depth_model, device)
    skip = [depth_dir] if depth_dir is not None else []  # a depth folder inside DIR holds no episodes
    if layout == "auto":
        layout = detect_layout(root, skip)
    sources = open_episodes(root, config, depth, layout, skip)
    fps = _fps(sources, layout, root)
    total = sum(len(clip_starts(s.frames, config)) for s in sources)
    if config.max_clips is not None:
        total = min(total, config.max_clips)
    if total == 0:
        longest = max(s.frames for s in sources)
        raise ValueError(
            f"no clip fits: clips of {config.frames} frames every {config.frame_step} need {config.span} "
            f"video frames; the longest episode under {root} has {longest}"
        )
    clips, skipped, prompts = [], 0, PromptTable()
    with atomic_dir(out, replaces=MANIFEST) as tmp:
        writer = ShardWriter(tmp, config.clips_per_shard)
        bar = tqdm(total=total, desc="sim prepare", unit="clip", disable=not progress)
        with contextlib.closing(cut_episodes(root, sources, config, depth)) as cut:
            for info, clip in cut:
                bar.update()
                prompt = info.pop("prompt")
                if clip is None:
                    skipped += 1
                    logger.warning(
                        "%s from frame %d: no depth to fuse; clip skipped", info["episode"], info["start"]
                    )
                else:
                    shard, index = writer.add(clip)
                    entry = {**info, "shard": shard, "index": index}
                    clips.append(clip_entry(entry, prompts.index(prompt)))
                if len(clips) + skipped >= total:
                    break
        writer.flush()
        bar.close()
        if not clips:
            raise ValueError(f"every clip under {root} was skipped: no depth could be fused (see --depth)")
        meta = _manifest(root, layout, sources, config, depth, fps, skipped)
        meta.update(shards=writer.shards, prompts=prompts.prompts, clips=clips)
        write_manifest(tmp, meta)
    return meta


def _manifest(root, layout, sources, config, depth, fps, skipped) -> dict[str, Any]:
    """The manifest's settings (without shards and clips)."""
    H, W = (int(s) for s in config.size)
    poses = _poses_note(sources)
    meta = {
        "source": str(root),
        "layout": layout,
        "poses": poses,
        "frames": config.frames,
        "height": H,
        "width": W,
        "fps": fps / config.frame_step,
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
    }
    if poses != "supplied":
        meta["odometry"] = {
            "short_side_px": config.odometry_side,
            "keyframe_every": config.odometry_keyframe_every,
            "world": "each estimated episode's first camera (OpenCV axes); scale of the depth",
        }
    return meta
