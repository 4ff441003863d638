"""PSNR and SSIM at 224×224 (the NWM / EgoWM evaluation protocol).

Both videos are resized to `size × size` (area interpolation when shrinking, bicubic when
growing; aspect ratio is not kept, as in the protocol) and compared per frame in [0, 1].
Inputs are uint8 `[T, H, W, 3]`; outputs are float `[T]`.
"""

from __future__ import annotations

import numpy as np

EVAL_SIZE = 224


def resize_video(frames: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    """uint8 `[T, H, W, 3]` → float32 `[T, size, size, 3]` in [0, 1]."""
    import cv2

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [T, H, W, 3]; got shape {frames.shape}")
    h, w = frames.shape[1:3]
    interp = cv2.INTER_AREA if (h >= size and w >= size) else cv2.INTER_CUBIC
    out = np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])
    return out.astype(np.float32) / 255.0


def _pair(pred: np.ndarray, gt: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    if np.shape(pred) != np.shape(gt):
        raise ValueError(f"pred and gt shapes differ: {np.shape(pred)} vs {np.shape(gt)} (expected equal)")
    if size is None:
        return np.asarray(pred, np.float32) / 255.0, np.asarray(gt, np.float32) / 255.0
    return resize_video(pred, size), resize_video(gt, size)


def psnr(pred: np.ndarray, gt: np.ndarray, *, size: int | None = EVAL_SIZE) -> np.ndarray:
    """Per-frame PSNR in dB (peak 1.0) → `[T]`; identical frames give +inf."""
    p, g = _pair(pred, gt, size)
    mse = ((p.astype(np.float64) - g) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


def ssim(pred: np.ndarray, gt: np.ndarray, *, size: int | None = EVAL_SIZE) -> np.ndarray:
    """Per-frame SSIM (Wang et al. 2004; Gaussian window σ=1.5, K1=0.01, K2=0.03) → `[T]`.

    Computed per colour channel and averaged over channels and pixels (valid region only).
    """
    import cv2

    p, g = _pair(pred, gt, size)
    c1, c2 = 0.01**2, 0.03**2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    scores = []
    for a, b in zip(p.astype(np.float64), g.astype(np.float64)):
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a**2
        var_b = blur(b * b) - mu_b**2
        cov = blur(a * b) - mu_a * mu_b
        num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
        den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        scores.append(float((num / den).mean()))
    return np.asarray(scores)
