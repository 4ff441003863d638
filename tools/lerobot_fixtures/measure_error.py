"""How far egoworld's decoded frames are from what lerobot's writer was given, per fixture.

    .venv/bin/python tools/lerobot_fixtures/measure_error.py [tests/fixtures/lerobot]

Prints, for each fixture, the largest error of a quadrant-interior mean and of a single pixel
inside those interiors (0 for lossless image-mode frames). The tolerances of
tests/data/test_lerobot_official.py were chosen from these numbers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from egoworld.data.lerobot import LeRobotDataset


def errors(root: Path) -> tuple[float, int]:
    truth = json.loads(root.with_name(root.name + ".truth.json").read_text())
    worst_mean, worst_pixel = 0.0, 0
    for camera in truth["cameras"]:
        ds = LeRobotDataset(root, image_key=camera, context=1, horizon=0, resolution=None, output="clip")
        for k, (e, s) in enumerate(ds.windows):  # one window per frame
            frame = ds.get_clip(k).frames[0].astype(int)
            for (y0, y1, x0, x1), colour in zip(truth["regions"], truth["episodes"][e]["cameras"][camera][s]):
                region = frame[y0:y1, x0:x1].reshape(-1, 3)
                worst_mean = max(worst_mean, float(np.abs(region.mean(0) - colour).max()))
                worst_pixel = max(worst_pixel, int(np.abs(region - colour).max()))
    return worst_mean, worst_pixel


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/lerobot")
    for truth in sorted(folder.glob("*.truth.json")):
        root = folder / truth.name.removesuffix(".truth.json")
        mean, pixel = errors(root)
        print(f"{root.name}: max |region mean - truth| {mean:.2f}, max |pixel - truth| {pixel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
