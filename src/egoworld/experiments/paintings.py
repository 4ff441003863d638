"""Painting-like texture images for the out-of-domain test (EgoWM §5.3, "paintings").

The training worlds use the procedural patterns of `egoworld.worlds.textures` (checker, stripes,
bricks, block noise, dots, gradients in two colours of one palette). These images are made to look
nothing like them: smooth multi-hue colour fields (blurred noise at several scales, saturated) and
brush-stroke canvases (hundreds of short, oriented, many-coloured strokes over a wash), like small
impressionist paintings. They are written as PNGs into a folder for `worlds generate --textures`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from egoworld.io_utils import atomic_dir

logger = logging.getLogger(__name__)

STYLES = ("colour-field", "strokes")


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """float [..., 3] HSV in [0, 1] → float RGB in [0, 1]."""
    import cv2

    img = np.stack([hsv[..., 0] * 180.0, hsv[..., 1] * 255.0, hsv[..., 2] * 255.0], -1)
    return cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255.0


def _smooth_field(rng: np.random.Generator, size: int, scales=(4, 8, 16)) -> np.ndarray:
    """Smooth noise in [0, 1] `[size, size]`: upsampled random grids of several scales, summed."""
    import cv2

    out = np.zeros((size, size), np.float32)
    for s in scales:
        grid = rng.normal(size=(s, s)).astype(np.float32)
        out += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) / s**0.5
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def colour_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """A saturated multi-hue field (hue, value from smooth noise): uint8 `[size, size, 3]`."""
    hue = (rng.uniform() + 0.8 * _smooth_field(rng, size)) % 1.0
    sat = 0.55 + 0.45 * _smooth_field(rng, size)
    val = 0.45 + 0.55 * _smooth_field(rng, size, scales=(8, 32))
    return (np.clip(_hsv_to_rgb(np.stack([hue, sat, val], -1)), 0, 1) * 255).astype(np.uint8)


def strokes(rng: np.random.Generator, size: int, count: int = 220) -> np.ndarray:
    """Short coloured brush strokes over a colour wash: uint8 `[size, size, 3]`."""
    import cv2

    canvas = colour_field(rng, size).copy()
    base_hue, flow = rng.uniform(), rng.uniform(0, np.pi)
    for _ in range(count):
        x, y = rng.uniform(0, size, 2)
        angle = flow + rng.normal(0, 0.5)
        length = rng.uniform(size / 16, size / 5)
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        hue = (base_hue + rng.normal(0, 0.18)) % 1.0
        colour = _hsv_to_rgb(np.array([[[hue, rng.uniform(0.5, 1.0), rng.uniform(0.4, 1.0)]]]))[0, 0]
        cv2.line(
            canvas,
            (int(x - dx), int(y - dy)),
            (int(x + dx), int(y + dy)),
            tuple(int(c * 255) for c in colour),
            thickness=max(1, int(rng.integers(1, 4))),
            lineType=cv2.LINE_AA,
        )
    return canvas


def painting(rng: np.random.Generator, style: str, size: int = 64) -> np.ndarray:
    """One painting-like image of `style` (one of `STYLES`): uint8 `[size, size, 3]`."""
    if style == "colour-field":
        return colour_field(rng, size)
    if style == "strokes":
        return strokes(rng, size)
    raise ValueError(f"unknown painting style {style!r}; expected one of {STYLES}")


def write_paintings(folder: str | Path, count: int = 16, *, seed: int = 0, size: int = 64) -> Path:
    """Write `count` painting PNGs (styles alternating) into `folder`, atomically; returns it.

    An existing folder is kept as it is when it already holds `count` PNGs.
    """
    from PIL import Image

    if count < 1:
        raise ValueError(f"count={count}; expected at least one painting")
    folder = Path(folder)
    if folder.is_dir() and len(list(folder.glob("*.png"))) == count:
        return folder
    rng = np.random.default_rng([seed, 5353])
    with atomic_dir(folder) as tmp:
        for i in range(count):
            style = STYLES[i % len(STYLES)]
            Image.fromarray(painting(rng, style, size)).save(tmp / f"painting_{i:03d}_{style}.png")
    logger.info("wrote %d paintings to %s", count, folder)
    return folder
