"""Episodes in the EgoDex layout (Apple's egocentric dexterous manipulation dataset), read safely.

Layout: a folder tree (EgoDex: ``partN/<task>/``) holding per episode ``<i>.mp4`` (30 Hz, 1080p)
and ``<i>.hdf5``. Keys read from the HDF5 file (all others are ignored):

    camera/intrinsic            [3, 3]     pinhole K of the video frames
    transforms/camera           [N, 4, 4]  camera-to-world, OpenCV camera axes (x right, y down,
                                           z forward: EgoDex's own 2-D visualiser projects
                                           inv(transforms/camera) @ joint with K as OpenCV does)
    transforms/<side><Joint>    [N, 4, 4]  joint-to-world (ARKit names; <side> = left | right); the
                                           translation column is the joint position, metres
    transforms/<side>Forearm    [N, 4, 4]  optional; the forearm joint (masks the arm)
    confidences/<side><Joint>   [N]        optional tracking confidence in [0, 1] (absent: 1)
    attributes llm_description, llm_description2, llm_type, which_llm_description
                                           optional text: the episode's prompt
                                           (`egoworld.sim.episode_prompts.egodex_prompt`)

Hand joints map to the project's 21-keypoint OpenPose/MANO order (`HAND_JOINTS`): 0 = <side>Hand
(the wrist); thumb 1-4 = ThumbKnuckle, ThumbIntermediateBase, ThumbIntermediateTip, ThumbTip;
index, middle, ring, pinky 5-8, 9-12, 13-16, 17-20 = <Finger>Knuckle, <Finger>IntermediateBase,
<Finger>IntermediateTip, <Finger>Tip with <Finger> = IndexFinger, MiddleFinger, RingFinger,
LittleFinger. The four <Finger>Metacarpal joints and the body joints are not used. A hand is
either complete (all 21) or absent (none); anything in between is the wrong layout.

Every refusal is one `ValueError` naming the file and what was expected. HDF5 datasets are
opened through the guarded helpers of `egoworld.data.recon_h5` (no external or virtual data,
no implausible compression) and their shapes are checked before anything is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egoworld.data import untrusted

FPS = 30  # EgoDex video and pose rate
SIDES = ("left", "right")
INTRINSIC_KEY = "camera/intrinsic"
CAMERA_KEY = "transforms/camera"
HAND_JOINTS: tuple[str, ...] = (
    "Hand",
    *(f"Thumb{p}" for p in ("Knuckle", "IntermediateBase", "IntermediateTip", "Tip")),
    *(
        f"{finger}{p}"
        for finger in ("IndexFinger", "MiddleFinger", "RingFinger", "LittleFinger")
        for p in ("Knuckle", "IntermediateBase", "IntermediateTip", "Tip")
    ),
)  # 21 names, in the project's keypoint order (egoworld.sim.hands)
FOREARM = "Forearm"


def joint_names(side: str) -> list[str]:
    """The 21 EgoDex joint names of one hand (`side` = "left" | "right"), in keypoint order."""
    if side not in SIDES:
        raise ValueError(f"hand side {side!r}; expected one of {SIDES}")
    return [f"{side}{j}" for j in HAND_JOINTS]


@dataclass
class HandEpisode:
    """Poses and hands of one recorded episode, whatever its layout (the video stays on disk).

    Both input layouts of `egoworld sim prepare` produce this record: EgoDex (`read_episode` here)
    and plain video folders (`egoworld.sim.plain_video`, hands turned into world coordinates).

    Attributes:
        name: the episode's path relative to the dataset root, without suffix (e.g. "task/3").
        video: the .mp4 path; sidecar: the file beside it holding K, poses and hands (.hdf5 / .npz).
        K: [3, 3] intrinsics of the video frames.
        cam_to_world: [N, 4, 4] camera-to-world (OpenCV axes).
        hands: [N, 2, 21, 3] joint positions (left, right), world metres, NaN where a hand is absent.
        confidence: [N, 2, 21] tracking confidence, 0 where a hand is absent.
        forearms: [N, 2, 3] forearm joint positions, NaN where absent.
        prompt: what the episode shows, in words (EgoDex's LLM description, a plain npz's `prompt`),
            or None when the files have none.
    """

    name: str
    video: Path
    sidecar: Path
    K: np.ndarray
    cam_to_world: np.ndarray
    hands: np.ndarray
    confidence: np.ndarray
    forearms: np.ndarray
    prompt: str | None = None

    def __len__(self) -> int:
        return len(self.cam_to_world)


EgoDexEpisode = HandEpisode  # the name this record had while EgoDex was the only layout


def episode_name(video: Path, root: str | Path | None) -> str:
    """An episode's name: its video's path under `root` without suffix (the video's stem outside it)."""
    root = Path(root) if root is not None else video.parent
    return str(video.with_suffix("").relative_to(root)) if video.is_relative_to(root) else video.stem


def scan_files(root: str | Path, suffixes: tuple[str, ...], skip=()) -> dict[str, dict[Path, Path]]:
    """The files under `root` with one of `suffixes` (lower case, with the dot), by suffix and stem:
    {suffix: {path without suffix: path}}, sorted. Hidden folders and the folders in `skip` (e.g. a
    depth folder inside the dataset) are left out; ".h5" counts as ".hdf5"."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"episode folder {str(root)!r} does not exist; expected a folder of episodes")
    skipped = [Path(s).resolve() for s in skip if s is not None]
    found: dict[str, dict[Path, Path]] = {s: {} for s in suffixes}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        suffix = ".hdf5" if path.suffix.lower() == ".h5" else path.suffix.lower()
        if suffix not in found or any(path.resolve().is_relative_to(s) for s in skipped):
            continue
        found[suffix][path.with_suffix("")] = path
    return found


def pair_videos(
    root: str | Path, sidecar: str, skip=(), *, holds: str, layout: str
) -> list[tuple[Path, Path]]:
    """(video, sidecar) pairs: every <name>.mp4 under `root` and the <name><sidecar> beside it.

    Raises ValueError for a video without its sidecar (`holds`: what the sidecar is, e.g. "poses";
    `layout`: the layout's description for the message) or a sidecar without its video."""
    found = scan_files(root, (".mp4", sidecar), skip)
    videos, sidecars = found[".mp4"], found[sidecar]
    for stem, video in videos.items():
        if stem not in sidecars:
            raise ValueError(
                f"video {video} has no {holds}: expected {stem.with_suffix(sidecar)} beside it ({layout})"
            )
    for stem, path in sidecars.items():
        if stem not in videos:
            video = stem.with_suffix(".mp4")
            raise ValueError(f"{holds} file {path} has no video: expected {video} beside it")
    return [(videos[s], sidecars[s]) for s in sorted(videos)]


def find_episodes(root: str | Path, skip=()) -> list[tuple[Path, Path]]:
    """(video, hdf5) pairs under `root` (searched recursively, hidden and `skip` folders left out), sorted.

    Raises ValueError for a video without its poses file or a poses file without its video.
    """
    layout = "EgoDex layout: <i>.mp4 + <i>.hdf5 with camera/intrinsic, transforms/camera and hand joints"
    return pair_videos(root, ".hdf5", skip, holds="poses", layout=layout)


def _array(f, key: str, path: Path, shape: tuple, what: str) -> np.ndarray | None:
    """The float array at `key` checked against `shape` (None entries: any), or None when absent."""
    from egoworld.data.safe_h5 import check_h5_storage, h5_dataset

    ds = h5_dataset(f, key, path)
    if ds is None:
        return None
    ok = ds.ndim == len(shape) and all(e is None or a == e for a, e in zip(ds.shape, shape))
    if not ok or ds.dtype.kind not in "fiu":
        want = "[" + ", ".join("N" if e is None else str(e) for e in shape) + "]"
        raise ValueError(
            f"{path}: {key} is {ds.dtype} {list(ds.shape)}; expected numbers {want} ({what}; the wrong joint "
            "layout for EgoDex)"
        )
    check_h5_storage(ds, key, path)
    try:
        return np.asarray(ds[()], dtype=np.float64)
    except OSError as err:
        raise ValueError(f"{path}: cannot read {key} ({err})") from None


def read_episode(video: str | Path, hdf5: str | Path, root: str | Path | None = None) -> HandEpisode:
    """Read and check one episode's HDF5 file (the keys in the module docstring)."""
    from egoworld.data.safe_h5 import open_h5
    from egoworld.sim.camera import validate_intrinsics, validate_poses
    from egoworld.sim.episode_prompts import egodex_prompt

    video, hdf5 = Path(video), Path(hdf5)
    with open_h5(hdf5) as f:
        K = _array(f, INTRINSIC_KEY, hdf5, (3, 3), "the camera intrinsics")
        if K is None:
            raise ValueError(f"{hdf5}: missing key {INTRINSIC_KEY!r}; expected the [3, 3] camera intrinsics")
        cams = _array(f, CAMERA_KEY, hdf5, (None, 4, 4), "camera-to-world poses")
        if cams is None:
            raise ValueError(f"{hdf5}: missing key {CAMERA_KEY!r}; expected [N, 4, 4] camera-to-world poses")
        n = len(cams)
        if not 0 < n <= untrusted.MAX_H5_FRAMES:
            raise ValueError(
                f"{hdf5}: {CAMERA_KEY} has {n} frames; expected 1 to {untrusted.MAX_H5_FRAMES} "
                "(raise egoworld.data.untrusted.MAX_H5_FRAMES for a longer trusted episode)"
            )
        hands = np.full((n, 2, 21, 3), np.nan)
        confidence = np.zeros((n, 2, 21))
        forearms = np.full((n, 2, 3), np.nan)
        for s, side in enumerate(SIDES):
            names = joint_names(side)
            found = {j: _array(f, f"transforms/{j}", hdf5, (n, 4, 4), f"{n} joint poses") for j in names}
            present = [j for j in names if found[j] is not None]
            if not present:
                continue
            if len(present) != len(names):
                missing = [j for j in names if found[j] is None]
                raise ValueError(
                    f"{hdf5}: the {side} hand has {len(present)} of its 21 joints; missing "
                    f"{['transforms/' + j for j in missing[:4]]}{' …' if len(missing) > 4 else ''} "
                    "(expected all 21 EgoDex hand joints or none; see docs/egosim.md)"
                )
            for k, j in enumerate(names):
                hands[:, s, k] = found[j][:, :3, 3]
                c = _array(f, f"confidences/{j}", hdf5, (n,), f"{n} confidences")
                confidence[:, s, k] = 1.0 if c is None else c
            arm = _array(f, f"transforms/{side}{FOREARM}", hdf5, (n, 4, 4), f"{n} joint poses")
            if arm is not None:
                forearms[:, s] = arm[:, :3, 3]
        prompt = egodex_prompt(f, hdf5)
    if np.isnan(hands).all():
        raise ValueError(
            f"{hdf5}: no hand joints; expected transforms/leftHand … or transforms/rightHand … (the 21 "
            "EgoDex joints of at least one hand, see docs/egosim.md)"
        )
    try:
        K = validate_intrinsics(K)
        cams = validate_poses(cams)
    except ValueError as err:
        raise ValueError(f"{hdf5}: {err}") from None
    bad = ~np.isfinite(confidence)
    confidence[bad] = 0.0
    hands[~np.isfinite(hands).all(-1)] = np.nan  # a joint with a non-finite coordinate is unknown
    name = episode_name(video, root)
    return HandEpisode(name, video, hdf5, K, cams, hands, np.clip(confidence, 0.0, 1.0), forearms, prompt)


def front_fraction(z: np.ndarray, confidence: np.ndarray, min_confidence: float = 0.5) -> float | None:
    """Share of the joints with confidence >= `min_confidence` and a finite camera depth `z` (any
    shape, as `confidence`) that lie in front of the camera (z > 0); None when there are none."""
    ok = np.isfinite(z) & (confidence >= min_confidence)
    return float((z[ok] > 0).mean()) if ok.any() else None


def check_in_front(episode: HandEpisode, min_confidence: float = 0.5, min_fraction: float = 0.5) -> None:
    """ValueError unless most confident hand joints lie in front of the camera (z > 0).

    A file whose `transforms/camera` uses other camera axes (e.g. OpenGL/ARKit: y up, z backward)
    puts the hands behind the camera; this says so instead of preparing empty skeleton videos.
    """
    from egoworld.sim.camera import invert_pose

    w2c = invert_pose(episode.cam_to_world)  # [N, 4, 4]
    p = episode.hands.reshape(len(episode), -1, 3)
    z = np.einsum("tj,tkj->tk", w2c[:, 2, :3], p) + w2c[:, 2, 3:4]  # [N, 42]
    fraction = front_fraction(z, episode.confidence.reshape(len(episode), -1), min_confidence)
    if fraction is not None and fraction < min_fraction:
        raise ValueError(
            f"{episode.sidecar}: only {100 * fraction:.0f}% of the confident hand joints lie in front of the "
            "camera; expected transforms/camera to be camera-to-world with OpenCV axes (x right, y down, "
            "z forward)"
        )
