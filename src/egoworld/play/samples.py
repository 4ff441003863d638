"""Start images the page offers: frames of generated worlds (shipped PNGs) and painting-like images.

The world frames are the first frames of navigation worlds from `egoworld.worlds.nav` (the kind
of scene the shipped model was trained on), rendered once at 128 px and shipped under
`static/samples/` (`python -m egoworld.play.samples` renders them again; needs MuJoCo + EGL).
The paintings are drawn procedurally at startup with brush strokes over a simple composition,
so the repository carries no artwork: an impressionist road, a swirling night, an arcade.

    samples() -> {name: Sample}   each with uint8 [128, 128, 3] pixels
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_DIR = Path(__file__).resolve().parent / "static" / "samples"
SIZE = 128
# shipped world frames: file stem -> (title, nav world seed it was rendered from)
WORLDS = {
    "world-room": ("generated room", 1),
    "world-yard": ("generated yard", 2),
    "world-painted-room": ("generated room with a painting", 3),
}


@dataclass
class Sample:
    """A bundled start image: `pixels` uint8 [H, W, 3]; `kind` is "world" or "painting"."""

    name: str
    title: str
    kind: str
    pixels: np.ndarray

    def png(self) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.pixels).save(buf, format="PNG")
        return buf.getvalue()


# painting helpers ------------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1]: (y [S, S], x [S, S]); y grows downwards."""
    c = (np.arange(size) + 0.5) / size
    return np.meshgrid(c, c, indexing="ij")


def _mix(a, b, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend of colours a, b ([3] each) by t [S, S] -> [S, S, 3]."""
    t = np.clip(t, 0.0, 1.0)[..., None]
    return np.asarray(a, dtype=np.float64) * (1 - t) + np.asarray(b, dtype=np.float64) * t


def _strokes(
    base: np.ndarray, angle: np.ndarray, rng: np.random.Generator, count: int, length: float, width: int
) -> np.ndarray:
    """Repaint float [S, S, 3] `base` with `count` short strokes along the field `angle` [S, S] (rad)."""
    from PIL import Image, ImageDraw

    size = base.shape[0]
    canvas = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    ys, xs = rng.uniform(0, size, count), rng.uniform(0, size, count)
    jitter = rng.normal(0.0, 14.0, (count, 3))
    lengths = length * rng.uniform(0.6, 1.4, count)
    for y, x, j, n in zip(ys, xs, jitter, lengths):
        iy, ix = min(int(y), size - 1), min(int(x), size - 1)
        colour = tuple(int(v) for v in np.clip(base[iy, ix] + j, 0, 255))
        a = angle[iy, ix] + rng.normal(0.0, 0.15)
        dx, dy = math.cos(a) * n / 2, math.sin(a) * n / 2
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=colour, width=width)
    return np.asarray(canvas, dtype=np.uint8)


def impressionist_road(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """A road between fields running to a low horizon under a warm sky, in short strokes: uint8 [S, S, 3]."""
    rng = np.random.default_rng(seed)
    y, x = _grid(size)
    horizon = 0.45
    img = _mix((250, 200, 120), (90, 140, 200), (horizon - y) / horizon)  # sky: warm at the horizon
    sun = np.exp(-(((x - 0.7) ** 2 + (y - 0.18) ** 2) / 0.004))
    img = img * (1 - sun[..., None]) + np.array([255, 240, 170]) * sun[..., None]
    hills = horizon - 0.06 * np.sin(7 * x + 1.0) ** 2 - 0.03 * np.sin(17 * x)
    ground = y > hills
    fields = _mix(
        (70, 120, 50), (200, 180, 60), 0.5 + 0.5 * np.sin(30 * x * (y - horizon + 0.05) / (y + 0.1))
    )
    img[ground] = fields[ground]
    depth = np.clip((y - horizon) / (1 - horizon), 0, 1)
    road = (np.abs(x - 0.5) < 0.02 + 0.45 * depth) & (y > horizon)
    img[road] = _mix((150, 120, 90), (210, 180, 140), depth)[road]
    trees = (
        (np.abs(x - 0.5) > 0.05 + 0.5 * depth) & (np.abs(x - 0.5) < 0.09 + 0.6 * depth) & (y > horizon - 0.12)
    )
    img[trees & (y < horizon + 0.35 * depth + 0.02)] = (40, 80, 45)
    angle = np.where(y < horizon, 0.1 * np.sin(9 * y), np.arctan2(y - horizon, x - 0.5))
    return _strokes(img, angle, rng, count=size * size // 6, length=size / 14, width=max(1, size // 64))


def swirling_night(size: int = SIZE, seed: int = 1) -> np.ndarray:
    """A night sky of swirls and stars over dark hills and a cypress, in curved strokes: uint8 [S, S, 3]."""
    rng = np.random.default_rng(seed)
    y, x = _grid(size)
    img = _mix((30, 50, 120), (70, 110, 180), 0.5 + 0.5 * np.sin(12 * x + 6 * y))
    centres = [(0.25, 0.35, 1.0), (0.2, 0.7, -1.0), (0.1, 0.12, 1.0)]
    angle = np.zeros_like(x)
    for cy, cx, turn in centres:
        r2 = (x - cx) ** 2 + (y - cy) ** 2
        angle += turn * np.exp(-r2 / 0.03) * (np.arctan2(y - cy, x - cx) + math.pi / 2)
    angle += 0.3 * np.sin(10 * x)
    for sy, sx, radius in [(0.12, 0.85, 0.06), (0.3, 0.15, 0.03), (0.15, 0.45, 0.025), (0.35, 0.9, 0.02)]:
        glow = np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / radius**2)
        img = img * (1 - glow[..., None]) + np.array([250, 230, 110]) * glow[..., None]
    land = y > 0.62 + 0.05 * np.sin(5 * x)
    img[land] = _mix((20, 40, 60), (50, 70, 60), (y - 0.62) * 3)[land]
    village = land & (y < 0.75) & (np.sin(40 * x) > 0.3) & (rng.uniform(size=x.shape) < 0.9)
    img[village & (np.sin(90 * y) > 0.6)] = (230, 200, 90)  # lit windows
    cypress = np.abs(x - 0.15) < 0.07 * np.clip((y - 0.2) / 0.8, 0, 1)
    img[cypress] = (25, 45, 30)
    angle = np.where(cypress, math.pi / 2, np.where(land, 0.2 * np.sin(8 * x), angle))
    return _strokes(img, angle, rng, count=size * size // 5, length=size / 12, width=max(1, size // 64))


def arcade(size: int = SIZE, seed: int = 2) -> np.ndarray:
    """A sunlit arcade and a long shadow on an empty square, one-point perspective: uint8 [S, S, 3]."""
    rng = np.random.default_rng(seed)
    y, x = _grid(size)
    horizon, vx = 0.42, 0.55
    img = _mix((40, 90, 80), (230, 190, 120), (horizon - y) / horizon * -1 + 1)  # green-gold sky
    img[y < horizon] = _mix((30, 80, 90), (240, 200, 130), y / horizon)[y < horizon]
    floor = y >= horizon
    img[floor] = _mix((190, 120, 60), (230, 160, 90), (y - horizon) * 2)[floor]
    # left wall of arches converging to the vanishing point (vx, horizon)
    t = np.clip((vx - x) / vx, 1e-3, 1)  # 0 at the vanishing point, 1 at the left edge
    top, bottom = horizon - 0.5 * t, horizon + 0.55 * t
    wall = (x < vx) & (y > top) & (y < bottom)
    img[wall] = (225, 200, 160)
    depth = 1.0 / t  # distance along the wall grows as 1/t in one-point perspective
    opening = wall & (np.sin(2.2 * depth) > -0.2) & (y > top + 0.3 * t) & (y < bottom - 0.02 * t)
    img[opening] = (60, 45, 40)
    shadow = floor & (x > vx) & (y - horizon > 0.8 * (x - vx)) & (y - horizon < 1.3 * (x - vx))
    img[shadow] = img[shadow] * 0.55
    tower = (np.abs(x - 0.82) < 0.035) & (y > 0.18) & (y < horizon)
    img[tower] = (200, 90, 60)
    angle = np.where(floor | wall, np.arctan2(y - horizon, x - vx), 0.0)
    return _strokes(img, angle, rng, count=size * size // 8, length=size / 18, width=max(1, size // 96))


PAINTINGS = {
    "painting-road": ("painting: road under a warm sky", impressionist_road),
    "painting-night": ("painting: swirling night", swirling_night),
    "painting-arcade": ("painting: arcade and long shadow", arcade),
}


@functools.lru_cache(maxsize=1)
def samples() -> dict[str, Sample]:
    """Every bundled start image by name: the shipped world frames, then the painted ones (made once)."""
    from PIL import Image

    out: dict[str, Sample] = {}
    for name, (title, _) in WORLDS.items():
        path = SAMPLE_DIR / f"{name}.png"
        if path.is_file():
            with Image.open(path) as img:
                out[name] = Sample(name, title, "world", np.asarray(img.convert("RGB"), dtype=np.uint8))
    for name, (title, paint) in PAINTINGS.items():
        out[name] = Sample(name, title, "painting", paint())
    return out


def render_world_samples(out_dir: Path = SAMPLE_DIR, size: int = SIZE) -> list[Path]:
    """Render the shipped world frames again: the first frame of nav world `seed`, episode 0."""
    from PIL import Image

    from egoworld.worlds import nav

    paths = []
    for name, (_, seed) in WORLDS.items():
        world, model, traj = nav.plan_episode(seed, 0, 2, size)
        frame, _ = next(nav.iter_walk(world, model, traj, size, nav.CAMERA_HEIGHT, ground_truth=False))
        path = Path(out_dir) / f"{name}.png"
        Image.fromarray(frame.rgb).save(path, optimize=True)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in render_world_samples():
        print(p)
