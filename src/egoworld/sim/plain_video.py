"""Episodes in the plain video layout: recorded egocentric video whose hands (and poses) come from elsewhere.

Layout: a folder tree holding per episode ``<name>.mp4`` and ``<name>.npz`` beside it (searched
recursively, hidden folders skipped, as `egoworld.sim.egodex.find_episodes`). The npz is loaded
with ``np.load(path, allow_pickle=False)``; the keys read (all others are ignored):

    K                [3, 3]          float, pinhole intrinsics of the video frames (required)
    hands            [N, 2, 21, 3]   float, 3-D hand joints (left, right) in the project's 21-keypoint
                                     order (`egoworld.sim.egodex.HAND_JOINTS`, `egoworld.sim.hands`),
                                     metres, in **camera coordinates** (OpenCV axes: x right, y down,
                                     z forward) of each frame, as per-frame hand estimators output
                                     them; NaN where a hand (or a joint) is unknown (required)
    hand_confidence  [N, 2, 21]      float in [0, 1] (optional; absent: 1 where the joint is finite,
                                     0 where it is NaN)
    cam_to_world     [N, 4, 4]       float, camera-to-world poses, OpenCV axes (optional; absent:
                                     `egoworld.sim.prepare` estimates them with Open3D RGB-D odometry)
    prompt           []              unicode string, what the episode shows (optional; the clips'
                                     text prompt, `egoworld.sim.episode_prompts.plain_prompt`)

N is the video's frame count. There are no forearm joints in this layout (the hand masks estimate
the forearm from the hand, `egoworld.sim.hand_mask.estimate_forearms`). Every refusal is one
`ValueError` naming the file, the key, what it holds and what was expected.

Where `hands` come from: any per-frame hand estimator that gives 3-D joints in camera coordinates,
or `egoworld sim estimate-hands ROOT --pose-model DIR (--depth D | --depth-model M)`
(`egoworld.sim.estimate_hands`), which fills in `hands` and `hand_confidence` of npz files that
hold only `K` (and perhaps `cam_to_world`, `prompt`): 2-D keypoints of a COCO-WholeBody pose model
lifted with metric depth (`egoworld.sim.hand_estimation`). `read_intrinsics` reads such a file
(no `hands` needed) and `write_hands` rewrites it; `read_episode`, which `sim prepare` uses, keeps
requiring `hands`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egoworld.sim.egodex import HandEpisode

KEYS = ("K", "hands", "hand_confidence", "cam_to_world", "prompt")
HANDS_WANT = (
    "left/right hand x 21 joints in the order of egoworld.sim.egodex.HAND_JOINTS x xyz, camera "
    "coordinates in metres, NaN where absent"
)


@dataclass
class PlainEpisode:
    """One plain-layout episode as its npz holds it (the video stays on disk).

    Attributes:
        name: the episode's path relative to the dataset root, without suffix.
        video: the .mp4 path; npz: the .npz path beside it.
        K: [3, 3] intrinsics of the video frames.
        hands_cam: [N, 2, 21, 3] joints in each frame's camera coordinates (OpenCV axes), NaN = unknown.
        confidence: [N, 2, 21] in [0, 1], 0 where a joint is unknown.
        cam_to_world: [N, 4, 4] camera-to-world poses, or None when the file has none.
        prompt: the episode's text prompt, or None when the file has none.
    """

    name: str
    video: Path
    npz: Path
    K: np.ndarray
    hands_cam: np.ndarray
    confidence: np.ndarray
    cam_to_world: np.ndarray | None
    prompt: str | None = None

    def __len__(self) -> int:
        return len(self.hands_cam)

    def with_poses(self, cam_to_world: np.ndarray) -> HandEpisode:
        """The layout-neutral record with these camera-to-world poses [N, 4, 4] and the hands in
        world coordinates (`hands_to_world`); no forearm joints (NaN)."""
        n = len(self)
        return HandEpisode(
            name=self.name,
            video=self.video,
            sidecar=self.npz,
            K=self.K,
            cam_to_world=cam_to_world,
            hands=hands_to_world(self.hands_cam, cam_to_world),
            confidence=self.confidence,
            forearms=np.full((n, 2, 3), np.nan),
            prompt=self.prompt,
        )


def hands_to_world(hands_cam: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """Joints [N, A, J, 3] in each frame's camera coordinates → world coordinates (NaN stays NaN)."""
    R = cam_to_world[:, None, None, :3, :3]  # [N, 1, 1, 3, 3]
    t = cam_to_world[:, None, None, :3, 3]  # [N, 1, 1, 3]
    return np.einsum("...ij,...j->...i", R, hands_cam) + t


def find_episodes(root: str | Path, skip=()) -> list[tuple[Path, Path]]:
    """(video, npz) pairs under `root` (searched recursively, hidden and `skip` folders left out), sorted.

    Raises ValueError for a video without its npz or an npz without its video.
    """
    from egoworld.sim.egodex import pair_videos

    layout = "plain layout: <name>.mp4 + <name>.npz with K and hands, see docs/egosim.md"
    return pair_videos(root, ".npz", skip, holds="hands", layout=layout)


def _load(path: Path) -> dict[str, np.ndarray]:
    """The arrays of `KEYS` present in the npz at `path` (sizes checked first, never a pickle)."""
    import zipfile

    from egoworld.io_utils import check_npz_sizes

    check_npz_sizes(path, "plain-layout file")
    out = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in KEYS:
                if key in z.files:
                    out[key] = z[key]
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(f"{path}: not a readable .npz ({err}); expected the arrays {list(KEYS)}") from None
    return out


def _checked(path: Path, arrays: dict, key: str, shape: tuple, what: str) -> np.ndarray | None:
    """`arrays[key]` as float64 after checking its shape against `shape` (None: any), or None when absent."""
    a = arrays.get(key)
    if a is None:
        return None
    ok = a.ndim == len(shape) and all(e is None or n == e for n, e in zip(a.shape, shape))
    if not ok or a.dtype.kind not in "fiu":
        want = "[" + ", ".join("N" if e is None else str(e) for e in shape) + "]"
        raise ValueError(f"{path}: {key} is {a.dtype} {list(a.shape)}; expected float {want} ({what})")
    return a.astype(np.float64)


def _check_poses(path: Path, cams: np.ndarray) -> np.ndarray:
    from egoworld.sim.camera import validate_poses

    try:
        return validate_poses(cams)
    except ValueError as err:
        raise ValueError(f"{path}: cam_to_world: {err}; expected rigid camera-to-world poses") from None


def _check_K(path: Path, K: np.ndarray | None) -> np.ndarray:
    from egoworld.sim.camera import validate_intrinsics

    if K is None:
        raise ValueError(f"{path}: missing key 'K'; expected the [3, 3] intrinsics of the video frames")
    if not np.isfinite(K).all():
        raise ValueError(f"{path}: K holds non-finite values {K.tolist()}; expected finite [3, 3] intrinsics")
    try:
        return validate_intrinsics(K)
    except ValueError as err:
        raise ValueError(f"{path}: K: {err}") from None


def _check_hands(path: Path, hands: np.ndarray | None) -> np.ndarray:
    if hands is None:
        raise ValueError(f"{path}: missing key 'hands'; expected float [N, 2, 21, 3] ({HANDS_WANT})")
    if np.isinf(hands).any():
        raise ValueError(f"{path}: hands holds ±inf; expected finite metres, or NaN where a joint is unknown")
    hands = hands.copy()
    hands[~np.isfinite(hands).all(-1)] = np.nan  # a joint with a NaN coordinate is unknown
    if np.isnan(hands).all():
        raise ValueError(f"{path}: hands is NaN everywhere; expected the joints of at least one hand")
    return hands


def _check_confidence(path: Path, confidence: np.ndarray | None, hands: np.ndarray) -> np.ndarray:
    known = np.isfinite(hands).all(-1)  # [N, 2, 21]
    if confidence is None:
        return known.astype(np.float64)
    if not (np.isfinite(confidence).all() and (confidence >= 0).all() and (confidence <= 1).all()):
        raise ValueError(
            f"{path}: hand_confidence holds values outside [0, 1] (or non-finite); expected [N, 2, 21] "
            "in [0, 1]"
        )
    return np.where(known, confidence, 0.0)


def read_episode(video: str | Path, npz: str | Path, root: str | Path | None = None) -> PlainEpisode:
    """Read and check one episode's npz (the keys of the module docstring; the frame count against
    the video is checked by the caller, which has the video open)."""
    from egoworld.sim.egodex import episode_name
    from egoworld.sim.episode_prompts import plain_prompt

    video, npz = Path(video), Path(npz)
    arrays = _load(npz)
    K = _check_K(npz, _checked(npz, arrays, "K", (3, 3), "the intrinsics of the video frames"))
    hands = _check_hands(npz, _checked(npz, arrays, "hands", (None, 2, 21, 3), HANDS_WANT))
    n = len(hands)
    if n == 0:
        raise ValueError(f"{npz}: hands has 0 frames; expected one entry per video frame")
    conf_want = f"{n} frames x 2 hands x 21 joints in [0, 1], one per frame of hands"
    conf = _checked(npz, arrays, "hand_confidence", (n, 2, 21), conf_want)
    cams_want = f"{n} camera-to-world poses, one per frame of hands"
    cams = _checked(npz, arrays, "cam_to_world", (n, 4, 4), cams_want)
    return PlainEpisode(
        name=episode_name(video, root),
        video=video,
        npz=npz,
        K=K,
        hands_cam=hands,
        confidence=_check_confidence(npz, conf, hands),
        cam_to_world=None if cams is None else _check_poses(npz, cams),
        prompt=plain_prompt(arrays.get("prompt"), npz),
    )


def check_in_front(episode: PlainEpisode, min_confidence: float = 0.5, min_fraction: float = 0.5) -> None:
    """ValueError unless most confident joints lie in front of their camera (z > 0): hands given in
    world coordinates, or in camera axes with z backward (OpenGL), are refused with this line."""
    from egoworld.sim.egodex import front_fraction

    fraction = front_fraction(episode.hands_cam[..., 2], episode.confidence, min_confidence)
    if fraction is not None and fraction < min_fraction:
        raise ValueError(
            f"{episode.npz}: only {100 * fraction:.0f}% of the confident hand joints have z > 0; expected "
            "hands in each frame's camera coordinates with OpenCV axes (x right, y down, z forward)"
        )


def read_intrinsics(npz: str | Path) -> tuple[np.ndarray, bool, int | None]:
    """(K [3, 3], whether the file holds `hands`, frames of `cam_to_world` or None) of an npz that may
    lack `hands`: the input of `egoworld sim estimate-hands`. K and the shape of `cam_to_world` are
    checked as in `read_episode`; `hands` (when present) is not read."""
    npz = Path(npz)
    arrays = _load(npz)
    K = _check_K(npz, _checked(npz, arrays, "K", (3, 3), "the intrinsics of the video frames"))
    cams = _checked(npz, arrays, "cam_to_world", (None, 4, 4), "camera-to-world poses, one per video frame")
    return K, "hands" in arrays, None if cams is None else len(cams)


def write_hands(npz: str | Path, hands: np.ndarray, confidence: np.ndarray) -> None:
    """Rewrite `npz` with `hands` [N, 2, 21, 3] (camera coordinates, metres, NaN = unknown) and
    `hand_confidence` [N, 2, 21] in [0, 1]; every other key is kept as it was (the file is read with
    ``allow_pickle=False``). The new file is written beside the old one and renamed onto it
    (`os.replace`), so a failure leaves the old file untouched; a compressed file stays compressed."""
    import zipfile

    from egoworld.io_utils import atomic_path, check_npz_sizes

    npz = Path(npz)
    hands = np.asarray(hands, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    n = len(hands)
    if hands.shape != (n, 2, 21, 3) or confidence.shape != (n, 2, 21):
        raise ValueError(
            f"hands {list(hands.shape)} and hand_confidence {list(confidence.shape)}; expected "
            "[N, 2, 21, 3] and [N, 2, 21]"
        )
    if not (np.isfinite(confidence).all() and (confidence >= 0).all() and (confidence <= 1).all()):
        raise ValueError("hand_confidence holds values outside [0, 1]; expected [N, 2, 21] in [0, 1]")
    check_npz_sizes(npz, "plain-layout file")
    try:
        with zipfile.ZipFile(npz) as zf:
            compressed = any(i.compress_type != zipfile.ZIP_STORED for i in zf.infolist())
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(f"{npz}: not a readable .npz ({err}); expected the arrays {list(KEYS)}") from None
    arrays.update(hands=hands, hand_confidence=confidence)
    save = np.savez_compressed if compressed else np.savez
    with atomic_path(npz, suffix=".npz") as tmp:
        save(tmp, **arrays)
