"""Write tiny LeRobot datasets with the OFFICIAL `lerobot` package, plus the ground truth used.

Run with the Python of a venv that has lerobot installed (see README.md beside this file):

    /tmp/lerobot-0.3.3-venv/bin/python tools/lerobot_fixtures/make_fixtures.py --out tests/fixtures/lerobot
    /tmp/lerobot-0.6.1-venv/bin/python tools/lerobot_fixtures/make_fixtures.py --out tests/fixtures/lerobot

The installed lerobot decides the format: 0.3.x writes v2.1 (`v21_*` fixtures), 0.4+ writes v3.0
(`v30_*` fixtures). Every fixture gets `<name>.truth.json` next to its folder: the writer version,
the features, and per episode the actions and states written and, per camera and frame, the RGB
colour of each of the four quadrants of the picture (`quadrants`: y0, y1, x0, x1), which tests
compare pixel for pixel (lossless PNG) or over the quadrant interiors (`regions`, lossy video).

Frame content (H=24, W=32, one flat colour per quadrant, so a lossy codec keeps it recognisable):
    top-left      grey ramp over the frame index: 20 + 16 * frame
    top-right     episode: grey 40 (episode 0), 120 (episode 1), ...
    bottom-left   camera: red for camera 0, blue for camera 1
    bottom-right  inverse ramp: 235 - 16 * frame
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

HEIGHT, WIDTH, FPS = 24, 32, 10
LENGTHS = (12, 10)  # frames per episode
CAMERAS = ("observation.images.front", "observation.images.wrist")
CAMERA_COLOURS = ((200, 40, 40), (40, 40, 200))
ACTION_DIM, STATE_DIM = 3, 2
TASK = "move the block"
# (y0, y1, x0, x1) of each quadrant, and of its interior: 2 pixels away from every edge so chroma
# subsampling and block edges of a lossy codec do not reach the region that is compared
QUADRANTS = ((0, 12, 0, 16), (0, 12, 16, 32), (12, 24, 0, 16), (12, 24, 16, 32))
REGIONS = tuple((y0 + 2, y1 - 2, x0 + 2, x1 - 2) for y0, y1, x0, x1 in QUADRANTS)


def quadrant_colours(episode: int, frame: int, camera: int) -> list[list[int]]:
    """RGB of the four quadrants (top-left, top-right, bottom-left, bottom-right)."""
    ramp = 20 + 16 * frame
    ep = 40 + 80 * episode
    return [[ramp] * 3, [ep] * 3, list(CAMERA_COLOURS[camera]), [235 - 16 * frame] * 3]


def frame_image(episode: int, frame: int, camera: int) -> np.ndarray:
    """uint8 [H, W, 3] picture of one frame."""
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for (y0, y1, x0, x1), colour in zip(QUADRANTS, quadrant_colours(episode, frame, camera)):
        img[y0:y1, x0:x1] = colour
    return img


def action(episode: int, frame: int) -> np.ndarray:
    return np.array([0.1 * frame + episode, np.sin(0.5 * frame), -0.25 * frame], np.float32)


def state(episode: int, frame: int) -> np.ndarray:
    return np.array([episode + 0.125 * frame, 100.0 - frame], np.float32)


def features(use_videos: bool, cameras: int, with_state: bool) -> dict:
    kind = "video" if use_videos else "image"
    out = {
        key: {"dtype": kind, "shape": (HEIGHT, WIDTH, 3), "names": ["height", "width", "channels"]}
        for key in CAMERAS[:cameras]
    }
    if with_state:
        out["observation.state"] = {"dtype": "float32", "shape": (STATE_DIM,), "names": ["s0", "s1"]}
    out["action"] = {"dtype": "float32", "shape": (ACTION_DIM,), "names": ["a0", "a1", "a2"]}
    return out


def lerobot_version() -> str:
    from importlib.metadata import version

    return version("lerobot")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape what the writer produced."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("lerobot", "datasets", "pyarrow", "av", "torch", "numpy", "pillow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def write(root: Path, use_videos: bool, cameras: int, with_state: bool) -> dict:
    """Record LENGTHS episodes with lerobot's LeRobotDataset writer; the ground truth as a dict."""
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError:  # lerobot < 0.3 kept it under common/
        from lerobot.common.datasets.lerobot_dataset import LeRobotDataset

    old_api = lerobot_version().startswith("0.3.")
    ds = LeRobotDataset.create(
        repo_id=f"egoworld/{root.name}",
        fps=FPS,
        features=features(use_videos, cameras, with_state),
        root=root,
        robot_type="egoworld_fixture",
        use_videos=use_videos,
    )
    truth = {"episodes": []}
    for e, n in enumerate(LENGTHS):
        ep = {"episode_index": e, "length": n, "actions": [], "states": [], "cameras": {}}
        for k in range(n):
            frame = {key: frame_image(e, k, c) for c, key in enumerate(CAMERAS[:cameras])}
            frame["action"] = action(e, k)
            ep["actions"].append(action(e, k).tolist())
            if with_state:
                frame["observation.state"] = state(e, k)
                ep["states"].append(state(e, k).tolist())
            if old_api:
                ds.add_frame(frame, task=TASK)
            else:
                ds.add_frame({**frame, "task": TASK})
        for c, key in enumerate(CAMERAS[:cameras]):
            ep["cameras"][key] = [quadrant_colours(e, k, c) for k in range(n)]
        ds.save_episode()
        truth["episodes"].append(ep)
    if hasattr(ds, "finalize"):  # v3.0 writers buffer parquet footers and metadata until then
        ds.finalize()
    return truth


def fixture_names(version: str) -> dict[str, dict]:
    if version.startswith("0.3."):
        return {
            "v21_video": {"use_videos": True, "cameras": 2, "with_state": True},
            "v21_image": {"use_videos": False, "cameras": 2, "with_state": True},
        }
    return {
        "v30_video": {"use_videos": True, "cameras": 2, "with_state": True},
        "v30_image_nostate": {"use_videos": False, "cameras": 2, "with_state": False},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="folder that receives <name>/ and <name>.truth.json")
    parser.add_argument("--only", nargs="*", help="fixture names to write (default: all for this lerobot)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is fetched; the writer works locally
    out = Path(args.out)
    version = lerobot_version()
    for name, opts in fixture_names(version).items():
        if args.only and name not in args.only:
            continue
        root = out / name
        if root.exists():
            shutil.rmtree(root)  # lerobot refuses to create into an existing folder
        root.parent.mkdir(parents=True, exist_ok=True)
        truth = write(root, **opts)
        info = json.loads((root / "meta" / "info.json").read_text())
        truth.update(
            writer=f"lerobot {version}",
            python=platform.python_version(),
            packages=package_versions(),
            codebase_version=info["codebase_version"],
            fps=FPS,
            height=HEIGHT,
            width=WIDTH,
            use_videos=opts["use_videos"],
            cameras=list(CAMERAS[: opts["cameras"]]),
            state_key="observation.state" if opts["with_state"] else None,
            action_key="action",
            quadrants=[list(q) for q in QUADRANTS],
            regions=[list(r) for r in REGIONS],
            task=TASK,
        )
        (out / f"{name}.truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(
            f"wrote {root} ({info['codebase_version']}, {size} bytes) with lerobot {version}", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
