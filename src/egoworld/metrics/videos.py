"""Load evaluation videos (mp4 through PyAV, or a folder of frames) and pair predictions with GT.

A video crosses this module as uint8 `[T, H, W, 3]` RGB. In a folder of videos, each entry is a
video file (`.mp4`, `.mov`, `.avi`, `.mkv`, `.webm`), a sub-folder of image frames (`.png`,
`.jpg`, `.jpeg`, sorted by the numbers in their names), or a sub-folder whose frames are in its
`frames/` folder (the tabletop layout of `egoworld worlds generate`); its *name* is the file stem
or the folder name. Predictions and ground truth are matched by name.

Ground truth for a video (see docs/metrics.md) is read from `<name>.npz` beside it and/or from
the `gt/` folder inside a frame folder, as `egoworld worlds generate` writes it: `gt/depth.npy`,
`gt/instances.npy`, `gt/cameras.json` ("K" → intrinsics, "cam_to_world" → poses_c2w) and
`gt/objects.json` (id → name and kind). Side files are not videos.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def _natural_key(path: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


def _frame_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=_natural_key)


def _frames_dir(folder: Path) -> Path:
    """The folder holding a frame-folder video's images: `folder` itself, else `folder/frames`."""
    if not _frame_files(folder) and (folder / "frames").is_dir() and _frame_files(folder / "frames"):
        return folder / "frames"
    return folder


def load_video(path: str | Path) -> np.ndarray:
    """Read a video file or a folder of frames (or of `frames/`) as uint8 `[T, H, W, 3]` RGB."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")
    if path.is_dir():
        return _load_frame_folder(_frames_dir(path))
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{path}: unsupported video type {path.suffix!r}; expected one of {VIDEO_SUFFIXES}")
    import av

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except av.error.FFmpegError as err:  # type: ignore[attr-defined]
        raise ValueError(f"{path}: cannot decode video ({err})") from err
    if not frames:
        raise ValueError(f"{path}: video has no frames (expected at least 1)")
    return np.stack(frames)


def _load_frame_folder(folder: Path) -> np.ndarray:
    import cv2

    files = _frame_files(folder)
    if not files:
        raise ValueError(f"{folder}: no frames found (expected files ending in {FRAME_SUFFIXES})")
    frames = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{f}: unreadable image")
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    shapes = {fr.shape for fr in frames}
    if len(shapes) > 1:
        raise ValueError(f"{folder}: frames have different sizes {sorted(shapes)} (expected one size)")
    return np.stack(frames)


def write_frame_folder(frames: np.ndarray, folder: str | Path) -> Path:
    """Write uint8 `[T, H, W, 3]` RGB frames as `00000.png, 00001.png, …` into `folder`."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(np.asarray(frames, dtype=np.uint8)):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def list_videos(folder: str | Path) -> dict[str, Path]:
    """Map name → path for every video file or frame folder (frames inside it or in its `frames/`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder of videos: {folder}")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            name = p.stem
        elif p.is_dir() and _frame_files(_frames_dir(p)):
            name = p.name
        else:
            continue
        if name in found:
            raise ValueError(f"{folder}: two videos share the name {name!r}: {found[name].name} and {p.name}")
        found[name] = p
    return found


@dataclass(frozen=True)
class VideoPair:
    """A predicted video and its ground truth, matched by name."""

    name: str
    pred: Path
    gt: Path


def is_single_video(path: str | Path) -> bool:
    """True for a video file or a folder whose frames are in it (or in its `frames/`)."""
    path = Path(path)
    if path.is_file():
        return True
    return path.is_dir() and bool(_frame_files(_frames_dir(path)))


def _video_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def match_videos(pred_dir: str | Path, gt_dir: str | Path) -> list[VideoPair]:
    """Pair the videos of two folders by name; every name must appear in both.

    Either side may also be one video (a file or a frame folder): two single videos make one pair
    (named after the prediction), and one video against a folder pairs it with the folder's video
    of the same name, or with the folder's only video.
    """
    for flag, path in (("--pred", pred_dir), ("--gt", gt_dir)):
        if not Path(path).exists():
            raise FileNotFoundError(f"{flag} {path} not found; expected a video or a folder of videos")
    one_pred, one_gt = is_single_video(pred_dir), is_single_video(gt_dir)
    if one_pred or one_gt:
        return [_match_single(Path(pred_dir), Path(gt_dir), one_pred, one_gt)]
    pred = list_videos(pred_dir)
    gt = list_videos(gt_dir)
    if not pred:
        raise ValueError(f"{pred_dir}: no videos found (expected mp4 files or folders of frames)")
    if not gt:
        raise ValueError(f"{gt_dir}: no videos found (expected mp4 files or folders of frames)")
    only_pred = sorted(set(pred) - set(gt))
    only_gt = sorted(set(gt) - set(pred))
    if only_pred or only_gt:
        raise ValueError(
            f"unmatched video names: only in --pred {only_pred}, only in --gt {only_gt} "
            "(expected the same names in both folders)"
        )
    return [VideoPair(name, pred[name], gt[name]) for name in sorted(pred)]


def _match_single(pred: Path, gt: Path, one_pred: bool, one_gt: bool) -> VideoPair:
    if one_pred and one_gt:
        if pred.is_file() and pred.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(
                f"--pred {pred}: unsupported video type {pred.suffix!r}; expected {VIDEO_SUFFIXES}"
            )
        if gt.is_file() and gt.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"--gt {gt}: unsupported video type {gt.suffix!r}; expected {VIDEO_SUFFIXES}")
        return VideoPair(_video_name(pred), pred, gt)
    single, folder, flag = (pred, gt, "--gt") if one_pred else (gt, pred, "--pred")
    videos = list_videos(folder)
    name = _video_name(single)
    if name in videos:
        other = videos[name]
    elif len(videos) == 1:
        other = next(iter(videos.values()))
    else:
        raise ValueError(
            f"{flag} {folder} holds {len(videos)} videos ({sorted(videos)[:5]}) and none is named {name!r}; "
            "expected one video, or a video of the same name"
        )
    return VideoPair(name, pred, other) if one_pred else VideoPair(_video_name(other), other, gt)


def has_side_key(video_path: str | Path, key: str) -> bool:
    """Whether the video's ground truth (`<name>.npz` or `gt/<key>.npy`) has `key`; reads no arrays."""
    video_path = Path(video_path)
    if video_path.is_dir() and (video_path / "gt" / f"{key}.npy").is_file():
        return True
    side = video_path.parent / f"{_video_name(video_path)}.npz"
    if not side.is_file():
        return False
    try:
        with np.load(side, allow_pickle=False) as z:
            return key in z.files
    except _CORRUPT:
        return False  # reported when the side file is read


def fit_to_prediction(
    pred: np.ndarray, gt: np.ndarray, side_gt: dict, name: str = "video"
) -> tuple[np.ndarray, dict, list[int] | None]:
    """Bring the ground truth to the prediction's frame size -> (gt, side_gt, [W, H] before or None).

    Videos `[T, H, W, 3]` must have the same length. A larger ground truth with the same aspect
    ratio (within a pixel) is area-downsampled to the prediction's size (a model trained on 32 px
    frames predicts 32 px frames of a 64 px world); its depth and instance masks are resized with
    nearest-neighbour sampling and its intrinsics scaled (pixel-centre convention). Any other size
    difference raises ValueError.
    """
    import cv2

    if pred.shape[0] != gt.shape[0]:
        raise ValueError(
            f"{name}: predicted video has {pred.shape[0]} frames, ground truth has {gt.shape[0]}"
        )
    (hp, wp), (hg, wg) = pred.shape[1:3], gt.shape[1:3]
    if (hp, wp) == (hg, wg):
        return gt, side_gt, None
    same_aspect = abs(hg * wp / wg - hp) <= 1.0 and abs(wg * hp / hg - wp) <= 1.0
    if not (hg >= hp and wg >= wp and same_aspect):
        raise ValueError(
            f"{name}: predicted frames are {wp}x{hp}, ground truth {wg}x{hg}; expected the same size, or a "
            "larger ground truth of the same aspect ratio (it is then downsampled to the prediction's size)"
        )
    gt = np.stack([cv2.resize(f, (wp, hp), interpolation=cv2.INTER_AREA) for f in gt])
    side = dict(side_gt)
    for key in ("depth", "instances"):
        a = side.get(key)
        if a is None or np.ndim(a) != 3 or np.shape(a)[1:] != (hg, wg):
            continue  # a wrong shape is reported where the array is used
        a = np.asarray(a)
        dtype = a.dtype
        work = a.astype(np.int32) if key == "instances" else a.astype(np.float32)
        resized = np.stack([cv2.resize(f, (wp, hp), interpolation=cv2.INTER_NEAREST) for f in work])
        side[key] = resized.astype(dtype)
    if side.get("intrinsics") is not None and np.shape(side["intrinsics"]) == (3, 3):
        k = np.array(side["intrinsics"], dtype=np.float64)
        sx, sy = wp / wg, hp / hg
        k[0, 0], k[1, 1] = k[0, 0] * sx, k[1, 1] * sy
        k[0, 2], k[1, 2] = (k[0, 2] + 0.5) * sx - 0.5, (k[1, 2] + 0.5) * sy - 0.5
        side["intrinsics"] = k
    return gt, side, [int(wg), int(hg)]


def check_same_shape(pred: np.ndarray, gt: np.ndarray, name: str = "video") -> None:
    """Raise `ValueError` unless two `[T, H, W, 3]` videos have the same length and size."""
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(
            f"{name}: predicted video has {pred.shape[0]} frames, ground truth has {gt.shape[0]}"
        )
    if pred.shape[1:] != gt.shape[1:]:
        raise ValueError(
            f"{name}: predicted frames are {pred.shape[2]}x{pred.shape[1]}, ground truth "
            f"{gt.shape[2]}x{gt.shape[1]} (expected the same size)"
        )


def load_side_file(video_path: Path) -> dict:
    """Ground truth stored with a video → {key: array} (empty dict if there is none).

    Reads `<name>.npz` beside the video (keys depth, instances, intrinsics, poses_c2w) and, for a
    frame folder, its `gt/` folder (depth.npy, instances.npy, cameras.json, objects.json). Keys
    found in both come from the `.npz`. `objects` (from gt/objects.json) is a dict
    {instance id: {"name": …, "kind": …}}, not an array.
    """
    video_path = Path(video_path)
    name = video_path.stem if video_path.is_file() else video_path.name
    out: dict = {}
    if video_path.is_dir() and (video_path / "gt").is_dir():
        out.update(_load_gt_folder(video_path / "gt"))
    side = video_path.parent / f"{name}.npz"
    if side.is_file():
        out.update(_load_npz(side))
    return out


# numpy reports a damaged file with whatever its zip, zlib or header parser raises (BadZipFile,
# zlib.error, EOFError, SyntaxError, tokenize.TokenError, ValueError, …): all mean "not valid".
_CORRUPT = Exception


def _load_npz(side: Path) -> dict[str, np.ndarray]:
    from egoworld.io_utils import check_npz_sizes

    try:
        check_npz_sizes(side, "side file")  # before numpy allocates what the headers claim
    except ValueError as err:
        raise ValueError(f"{side}: not a valid .npz file of arrays ({err})") from None
    try:
        data = np.load(side, allow_pickle=False)
    except _CORRUPT as err:
        raise ValueError(f"{side}: not a valid .npz file of arrays ({type(err).__name__})") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{side}: not a valid .npz file of arrays (holds a single {type(data).__name__})")
    try:
        with data:
            return {k: data[k] for k in data.files}
    except _CORRUPT as err:
        raise ValueError(f"{side}: not a valid .npz file of arrays ({type(err).__name__})") from err


def _load_npy(path: Path) -> np.ndarray:
    from egoworld.io_utils import check_npy_size

    try:
        check_npy_size(path, "ground-truth array")
    except ValueError as err:
        raise ValueError(f"{path}: not a valid .npy array file ({err})") from None
    try:
        return np.load(path, allow_pickle=False)
    except _CORRUPT as err:
        raise ValueError(f"{path}: not a valid .npy array file ({type(err).__name__})") from err


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level; got {type(data).__name__}")
    return data


def _load_gt_folder(gt: Path) -> dict:
    """The `gt/` folder of `egoworld worlds generate` under this module's side-file keys."""
    out: dict = {}
    for key in ("depth", "instances"):
        if (gt / f"{key}.npy").is_file():
            out[key] = _load_npy(gt / f"{key}.npy")
    cams = gt / "cameras.json"
    if cams.is_file():
        data = _load_json(cams)
        for src, key in (("K", "intrinsics"), ("cam_to_world", "poses_c2w")):
            if src in data:
                try:
                    out[key] = np.asarray(data[src], dtype=np.float64)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{cams}: {src!r} is not a numeric array ({err})") from err
    objects = gt / "objects.json"
    if objects.is_file():
        out["objects"] = parse_objects(_load_json(objects), objects)
    return out


def parse_objects(data: dict, where: Path | str) -> dict[int, dict]:
    """`{"objects": {"<id>": {"name": …, "kind": …}}}` → {id: {"name", "kind"}}, checked."""
    objects = data.get("objects")
    if not isinstance(objects, dict):
        raise ValueError(f'{where}: expected an "objects" mapping of instance id → {{"name", "kind"}}')
    out: dict[int, dict] = {}
    for key, entry in objects.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("kind", ""), str):
            raise ValueError(
                f'{where}: objects[{key!r}] must be an object like {{"name": "chair_0", "kind": "static"}}; '
                f"got {entry!r}"
            )
        try:
            oid = int(key)
        except ValueError:
            raise ValueError(f"{where}: objects key {key!r} is not an integer instance id") from None
        out[oid] = {"name": str(entry.get("name", key)), "kind": entry.get("kind")}
    return out
