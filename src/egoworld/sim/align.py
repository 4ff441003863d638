"""Sim(3) alignment of corresponding point sets (Umeyama 1991), plus a robust reweighted variant."""

from __future__ import annotations

import numpy as np


def _check_pair(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 3 or src.shape != dst.shape:
        raise ValueError(
            f"point sets have shapes {list(src.shape)} and {list(dst.shape)}; expected two [N, 3] of equal N"
        )
    if len(src) < 3:
        raise ValueError(f"got {len(src)} correspondences; expected at least 3")
    return src, dst


def umeyama(
    src: np.ndarray,  # [N, 3]
    dst: np.ndarray,  # [N, 3]
    *,
    with_scale: bool = True,
    weights: np.ndarray | None = None,  # [N]
) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ s R src + t`` (Umeyama 1991, Eqs. 40–42).

    Returns ``s`` (1.0 when ``with_scale`` is False), ``R`` ``[3, 3]`` with det +1, ``t`` ``[3]``.
    """
    src, dst = _check_pair(src, dst)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (len(src),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights have shape {list(w.shape)}; expected [{len(src)}] non-negative, not all 0")
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    var_s = float(w @ np.sum(xs * xs, axis=1))
    if var_s < 1e-18:
        raise ValueError("source points are all at one place; a similarity is undefined")
    cov = (xd * w[:, None]).T @ xs  # Σ_xy, [3, 3]
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    s = float(np.trace(np.diag(D) @ S) / var_s) if with_scale else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def robust_umeyama(
    src: np.ndarray,  # [N, 3]
    dst: np.ndarray,  # [N, 3]
    *,
    with_scale: bool = True,
    iterations: int = 10,
    threshold: float | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Iteratively reweighted Umeyama (Huber weights on residuals); RANSAC-free.

    ``threshold`` is the Huber scale in the units of ``dst``; by default 1.4826 × the median residual.
    """
    src, dst = _check_pair(src, dst)
    s, R, t = umeyama(src, dst, with_scale=with_scale)
    for _ in range(iterations):
        res = np.linalg.norm(dst - (s * src @ R.T + t), axis=1)
        k = threshold if threshold is not None else 1.4826 * float(np.median(res)) + 1e-12
        w = np.where(res <= k, 1.0, k / np.maximum(res, 1e-12))
        s, R, t = umeyama(src, dst, with_scale=with_scale, weights=w)
    return s, R, t


def sim3_matrix(s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The 4×4 matrix of ``x ↦ s R x + t``."""
    M = np.eye(4)
    M[:3, :3] = s * np.asarray(R)
    M[:3, 3] = t
    return M


def apply_sim3(points: np.ndarray, s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``s R p + t`` for points ``[N, 3]``."""
    return s * np.asarray(points, dtype=np.float64) @ np.asarray(R).T + np.asarray(t)
