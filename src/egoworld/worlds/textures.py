"""Wall, floor and object textures: seeded procedural patterns or a user folder of images."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
TEXTURE_SIZE = 64  # pixels per side of every texture image

PATTERNS = ("checker", "stripes", "bricks", "noise", "dots", "gradient")


def _palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(0.15, 0.9, size=3)
    other = np.clip(base * rng.uniform(0.4, 0.8) + rng.uniform(-0.1, 0.1, size=3), 0, 1)
    return base, other


def procedural(rng: np.random.Generator, pattern: str | None = None, size: int = TEXTURE_SIZE) -> np.ndarray:
    """A seeded pattern image, uint8 [size, size, 3]; `pattern` is one of `PATTERNS` (random if None)."""
    if pattern is None:
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    if pattern not in PATTERNS:
        raise ValueError(f"unknown texture pattern {pattern!r}; expected one of {PATTERNS}")
    a, b = _palette(rng)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if pattern == "checker":
        n = int(rng.integers(2, 9))
        mask = ((xx * n).astype(int) + (yy * n).astype(int)) % 2
    elif pattern == "stripes":
        n, angle = int(rng.integers(3, 12)), rng.uniform(0, np.pi)
        mask = (np.sin(2 * np.pi * n * (xx * np.cos(angle) + yy * np.sin(angle))) > 0).astype(float)
    elif pattern == "bricks":
        rows = int(rng.integers(4, 10))
        row = (yy * rows).astype(int)
        u = (xx * rows / 2 + 0.5 * (row % 2)) % 1.0
        v = (yy * rows) % 1.0
        mask = ((u < 0.06) | (v < 0.12)).astype(float)
    elif pattern == "noise":
        coarse = rng.uniform(0, 1, size=(8, 8))
        mask = np.kron(coarse, np.ones((size // 8, size // 8)))
        mask = 0.5 * mask + 0.5 * rng.uniform(0, 1, size=(size, size))
    elif pattern == "dots":
        n = int(rng.integers(3, 8))
        mask = ((((xx * n) % 1 - 0.5) ** 2 + ((yy * n) % 1 - 0.5) ** 2) < 0.08).astype(float)
    else:  # gradient
        mask = (xx + yy) / 2
    img = a[None, None] * (1 - mask[..., None]) + b[None, None] * mask[..., None]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def to_png(img: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H, W, 3] image (what MuJoCo reads as a texture asset)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def image_files(folder: Path) -> list[Path]:
    """The files in `folder` whose names end in one of `IMAGE_SUFFIXES`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_folder(folder: str | Path, size: int = TEXTURE_SIZE) -> list[np.ndarray]:
    """Every image in `folder` (sorted by name), resized to uint8 [size, size, 3].

    Raises FileNotFoundError / NotADirectoryError for a missing path and ValueError for a folder
    with no images or an image that cannot be decoded.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"texture folder {str(folder)!r} does not exist; expected a folder of images")
    if not folder.is_dir():
        raise NotADirectoryError(f"texture path {str(folder)!r} is not a folder; expected a folder of images")
    files = image_files(folder)
    if not files:
        raise ValueError(
            f"texture folder {str(folder)!r} holds no images; expected files ending in {IMAGE_SUFFIXES}"
        )
    images = []
    for path in files:
        try:
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR)))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(
                f"texture {str(path)!r} cannot be read as an image ({err}); expected PNG/JPEG"
            ) from err
    log.info("loaded %d textures from %s", len(images), folder)
    return images


def digest(images: list[np.ndarray]) -> str:
    """A short hash of a texture set, so a dataset records which textures made it."""
    h = hashlib.sha256()
    for img in images:
        h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()[:16]
