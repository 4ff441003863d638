"""Objects and their masks for SCS (EgoWM §4): prompts, ground-truth masks, and SAM 2 tracking.

Objects are static scene structures, given either as point clicks in an annotation JSON
(schema in docs/metrics.md) or as proposals from ground-truth instance masks. They are tracked
through a video with the SAM 2 video predictor (local checkpoint, selectable config), or read
from ground-truth instance masks where a simulator provides them. Masks leave this module as
boolean `[T, K, H, W]`, objects in prompt order.
"""

from __future__ import annotations

import json
import logging
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egoworld.errors import EgoworldError

logger = logging.getLogger(__name__)

DEFAULT_SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


@dataclass
class ObjectPrompt:
    """One object to track: point clicks or a mask on frame `frame` (shared by both videos).

    Attributes:
        obj_id: name of the object (annotation "id", or the instance id as a string).
        frame: frame index the prompt refers to (0, the shared first observation, by default).
        points: clicks `[N, 2]` as (x, y) pixels, or None.
        labels: `[N]` 1 = on the object, 0 = background, or None.
        mask: boolean `[H, W]` prompt, or None.
        instance_id: the ground-truth instance id when the object came from instance masks.
        size: (width, height) of the frames the clicks were made on, if it was given.
    """

    obj_id: str
    frame: int = 0
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    mask: np.ndarray | None = None
    instance_id: int | None = None
    size: tuple[int, int] | None = None


def _fail(path: Path, where: str, msg: str) -> ValueError:
    return ValueError(f"{path}: {where}: {msg} (see the annotation schema in docs/metrics.md)")


def load_annotations(path: str | Path) -> dict[str, list[ObjectPrompt]]:
    """Read an annotation JSON of point clicks per video → {video name: [ObjectPrompt, …]}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise _fail(path, "top level", 'expected an object with a "videos" mapping')
    out: dict[str, list[ObjectPrompt]] = {}
    for name, entry in videos.items():
        objects = entry.get("objects") if isinstance(entry, dict) else None
        if not isinstance(objects, list) or not objects:
            raise _fail(path, f"videos.{name}", 'expected a non-empty "objects" list')
        size = entry.get("size")
        if size is not None and (not isinstance(size, list) or len(size) != 2 or min(size) <= 0):
            raise _fail(
                path, f"videos.{name}.size", f"expected [width, height] of the annotated frames; got {size}"
            )
        prompts = []
        for i, obj in enumerate(objects):
            where = f"videos.{name}.objects[{i}]"
            if not isinstance(obj, dict):
                raise _fail(
                    path, where, f'expected an object like {{"id": …, "points": [[x, y]]}}; got {obj!r}'
                )
            try:
                pts = np.asarray(obj.get("points", []), dtype=np.float64)
            except (TypeError, ValueError):
                raise _fail(
                    path, where, f'"points" must be a list of [x, y] numbers; got {obj.get("points")!r}'
                ) from None
            if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
                raise _fail(
                    path, where, f'"points" must be a non-empty list of [x, y]; got shape {pts.shape}'
                )
            labels = obj.get("labels", [1] * len(pts))
            if (
                not isinstance(labels, list)
                or len(labels) != len(pts)
                or any(v not in (0, 1) for v in labels)
            ):
                raise _fail(path, where, f'"labels" must be {len(pts)} values of 0 or 1; got {labels!r}')
            labels = np.asarray(labels, dtype=np.int32)
            frame = obj.get("frame", 0)
            if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
                raise _fail(path, where, f'"frame" must be an integer ≥ 0; got {frame!r}')
            prompt = ObjectPrompt(str(obj.get("id", i)), frame, pts, labels)
            prompt.size = None if size is None else (int(size[0]), int(size[1]))
            prompts.append(prompt)
        out[name] = prompts
    return out


def fit_prompts(prompts: list[ObjectPrompt], width: int, height: int) -> list[ObjectPrompt]:
    """Rescale clicks made on frames of another size (the annotation's "size") to a `width × height` video."""
    out = []
    for p in prompts:
        pts = p.points
        if pts is not None and p.size is not None and p.size != (width, height):
            pts = pts * np.array([width / p.size[0], height / p.size[1]])
        out.append(ObjectPrompt(p.obj_id, p.frame, pts, p.labels, p.mask, p.instance_id, (width, height)))
    return out


def check_prompts_fit(
    prompts: list[ObjectPrompt], num_frames: int, height: int, width: int, name: str
) -> None:
    """Raise `ValueError` if a prompt lies outside the video (frame index or click position)."""
    for p in prompts:
        if p.frame >= num_frames:
            raise ValueError(
                f"{name}: object {p.obj_id!r} is annotated on frame {p.frame}; video has {num_frames}"
            )
        if p.points is not None:
            x, y = p.points[:, 0], p.points[:, 1]
            if (x < 0).any() or (x > width - 1).any() or (y < 0).any() or (y > height - 1).any():
                raise ValueError(
                    f"{name}: object {p.obj_id!r} has clicks {p.points.tolist()} outside the "
                    f"{width}x{height} frame"
                )


DEFAULT_EXCLUDE_NAMES = ("floor", "ceiling", "ground", "wall_*", "fence_*", "sky")


def prompts_from_instances(
    instances: np.ndarray,
    *,
    frame: int = 0,
    min_area: float = 0.005,
    max_area: float | None = None,
    ignore_ids: tuple[int, ...] = (0,),
    objects: dict[int, dict] | None = None,
    kinds: tuple[str, ...] = ("static",),
    exclude_names: tuple[str, ...] = DEFAULT_EXCLUDE_NAMES,
    allow_empty: bool = False,
) -> list[ObjectPrompt]:
    """Object proposals for SCS from a ground-truth instance-id image: the static structures.

    Args:
        instances: integer ids `[T, H, W]` (or `[H, W]` for one frame).
        frame: the frame whose instances become objects.
        min_area, max_area: smallest / largest object, as fractions of the image (None: no limit).
        ignore_ids: ids that are not objects (0: background, the sky of a yard).
        objects: {id: {"name", "kind"}} from `gt/objects.json`. When given, only ids listed there
            with a kind in `kinds` are kept (static structures: not the movable objects or the
            agent's own body), and those whose name matches a glob in `exclude_names` are dropped
            (the room's or yard's enclosing surfaces: floor, ceiling, ground, walls, fences). When
            None, every id but `ignore_ids` is a candidate (no names or kinds to go by).
        kinds, exclude_names: see `objects`.
        allow_empty: return [] instead of raising when no object qualifies.
    """
    import fnmatch

    inst = np.asarray(instances)
    if inst.ndim == 3:
        inst = inst[frame]
    if inst.ndim != 2:
        raise ValueError(f"instances must be [T, H, W] or [H, W]; got shape {np.shape(instances)}")
    ids, counts = np.unique(inst, return_counts=True)
    prompts = []
    for i, c in zip(ids.tolist(), counts.tolist()):
        if i in ignore_ids or c < min_area * inst.size:
            continue
        if max_area is not None and c > max_area * inst.size:
            continue
        name = str(i)
        if objects is not None:
            info = objects.get(int(i))
            if info is None or info.get("kind") not in kinds:
                continue
            name = str(info.get("name", i))
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude_names):
                continue
        prompts.append(ObjectPrompt(name, frame, mask=inst == i, instance_id=int(i)))
    if not prompts and not allow_empty:
        rules = f"ignored ids: {list(ignore_ids)}"
        if objects is not None:
            rules += f", kinds kept: {list(kinds)}, names excluded: {list(exclude_names)}"
        raise ValueError(
            f"no object of {min_area:.1%} to {1.0 if max_area is None else max_area:.0%} of the image "
            f"in the instance masks of frame {frame} (ids present: {ids.tolist()}; {rules})"
        )
    return prompts


def masks_from_instances(instances: np.ndarray, prompts: list[ObjectPrompt]) -> np.ndarray:
    """Ground-truth masks of the prompted objects: ids `[T, H, W]` → boolean `[T, K, H, W]`."""
    inst = np.asarray(instances)
    if inst.ndim != 3:
        raise ValueError(f"instances must be [T, H, W]; got shape {inst.shape}")
    ids = []
    for p in prompts:
        if p.instance_id is None:
            raise ValueError(
                f"object {p.obj_id!r} has no instance id; masks from instances need instance prompts"
            )
        ids.append(p.instance_id)
    return inst[:, None] == np.asarray(ids)[None, :, None, None]


class Sam2Tracker:
    """The SAM 2 video predictor, prompted with clicks or masks, run over a whole video.

    Args:
        config: SAM 2 hydra config name, e.g. "configs/sam2.1/sam2.1_hiera_t.yaml" (tiny) …
            "configs/sam2.1/sam2.1_hiera_l.yaml".
        checkpoint: local `.pt` checkpoint matching the config (e.g. `sam2.1_hiera_tiny.pt` from
            https://github.com/facebookresearch/sam2#download-checkpoints). None builds random
            weights, which is only good for plumbing tests.
        device: torch device.
        image_size: override SAM 2's input resolution (1024 in every released config). Smaller is
            much faster on CPU but departs from how the checkpoints were trained: tests only.
    """

    def __init__(
        self,
        config: str = DEFAULT_SAM2_CONFIG,
        checkpoint: str | Path | None = None,
        device: str = "cpu",
        *,
        image_size: int | None = None,
    ):
        try:
            from sam2.build_sam import build_sam2_video_predictor
        except ImportError as err:
            raise EgoworldError(
                "SAM 2 is not installed; install it with "
                "`SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2`"
            ) from err
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(
                f"SAM 2 checkpoint not found: {checkpoint}; download it (e.g. sam2.1_hiera_tiny.pt for "
                f"{DEFAULT_SAM2_CONFIG}) from https://github.com/facebookresearch/sam2#download-checkpoints "
                "and pass its path with --sam2-checkpoint"
            )
        if checkpoint is None:
            logger.warning("SAM 2 has random weights: masks are meaningless (plumbing only)")
        from hydra.errors import MissingConfigException

        overrides = [] if image_size is None else [f"++model.image_size={int(image_size)}"]
        try:
            self.predictor = build_sam2_video_predictor(
                config,
                ckpt_path=str(checkpoint) if checkpoint else None,
                device=device,
                hydra_overrides_extra=overrides,
            )
        except MissingConfigException as err:
            raise ValueError(
                f"unknown SAM 2 config {config!r}; expected e.g. {DEFAULT_SAM2_CONFIG!r} "
                "(or _s, _b+, _l: the configs that ship with sam2)"
            ) from err
        except (RuntimeError, KeyError, pickle.UnpicklingError) as err:
            # load_state_dict's missing/unexpected keys or shape mismatches, a dict without
            # "model", or a file torch cannot read
            if checkpoint is None:
                raise
            detail = " ".join(str(err).split()) or type(err).__name__
            raise ValueError(
                f"SAM 2 checkpoint {checkpoint} does not match config {config!r} ({detail[:200]}); "
                "expected the checkpoint released with that config (e.g. sam2.1_hiera_tiny.pt for "
                f"{DEFAULT_SAM2_CONFIG!r})"
            ) from err
        self.device = device

    def track(self, frames: np.ndarray, prompts: list[ObjectPrompt]) -> np.ndarray:
        """Track each prompted object through uint8 frames `[T, H, W, 3]` → boolean masks `[T, K, H, W]`."""
        import cv2
        import torch

        frames = np.asarray(frames)
        t, h, w = frames.shape[:3]
        if not prompts:
            raise ValueError("no objects to track (expected at least one prompt)")
        check_prompts_fit(prompts, t, h, w, "video")
        masks = np.zeros((t, len(prompts), h, w), dtype=bool)
        with tempfile.TemporaryDirectory(prefix="egoworld-sam2-") as tmp:
            for i, frame in enumerate(frames):  # SAM 2 reads a folder of "<index>.jpg"
                cv2.imwrite(
                    f"{tmp}/{i:05d}.jpg",
                    cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95],
                )
            with torch.inference_mode(), warnings.catch_warnings():
                # Without its CUDA extension SAM 2 skips hole filling and says so once per frame.
                warnings.filterwarnings("ignore", message=r"cannot import name '_C'")
                state = self.predictor.init_state(video_path=tmp, offload_video_to_cpu=True)
                for k, p in enumerate(prompts):
                    if p.mask is not None:
                        self.predictor.add_new_mask(state, frame_idx=p.frame, obj_id=k, mask=p.mask)
                    else:
                        self.predictor.add_new_points_or_box(
                            state,
                            frame_idx=p.frame,
                            obj_id=k,
                            points=p.points.astype(np.float32),
                            labels=p.labels,
                        )
                start = min(p.frame for p in prompts)
                for frame_idx, obj_ids, logits in self.predictor.propagate_in_video(
                    state, start_frame_idx=start
                ):
                    for j, k in enumerate(obj_ids):
                        masks[frame_idx, k] = (logits[j, 0] > 0.0).cpu().numpy()
                if start > 0:
                    for frame_idx, obj_ids, logits in self.predictor.propagate_in_video(
                        state, start_frame_idx=start, reverse=True
                    ):
                        for j, k in enumerate(obj_ids):
                            masks[frame_idx, k] = (logits[j, 0] > 0.0).cpu().numpy()
                self.predictor.reset_state(state)
        return masks  # [T, K, H, W]
