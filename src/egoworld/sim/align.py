"""Sim(3) alignment of corresponding point sets (Umeyama 1991), plus a robust reweighted variant,
and the robust 1-D affine fit ``y ≈ a x + b`` that puts relative depth on a metric scale.

The one Umeyama of the code base: EgoSim's state update aligns point clouds with it, and Cam ERR
(`egoworld.metrics.geometry.camera_errors`) aligns camera trajectories with its rank-tolerant
option (`rotations=`). `robust_affine_fit` is the per-frame scale-and-shift of
`egoworld.sim.depth_align`.
"""

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
    rotations: tuple[np.ndarray, np.ndarray] | None = None,  # ([N, 3, 3], [N, 3, 3])
    rank_tol: float = 1e-9,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ s R src + t`` (Umeyama 1991, Eqs. 40–42).

    Returns ``s`` (1.0 when ``with_scale`` is False), ``R`` ``[3, 3]`` with det +1, ``t`` ``[3]``.

    Rank-tolerant option for camera trajectories: ``rotations = (R_src, R_dst)``, the orientations
    ``[N, 3, 3]`` attached to the points (camera-to-world rotations), with ``R_dst_i ≈ R R_src_i``.
    When the source or the destination points span fewer than 3 dimensions (a straight drive, a
    planar path, a camera turning in place: an eigenvalue of the spread ≤ ``rank_tol`` × the
    largest), the positions leave the rotation about the path partly or wholly free, so ``R`` is
    taken from the orientations instead: the chordal L2 mean of ``R_dst_i R_src_iᵀ`` projected
    onto SO(3) (Hartley et al. 2013, "Rotation averaging", §5.3); then ``s`` and ``t`` are the least-squares
    fit for that ``R`` (``s`` = 1 when all points are at one place). Without ``rotations`` a
    rank-deficient set gets one of the equally good SVD solutions, and a set at one place raises.
    """
    src, dst = _check_pair(src, dst)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (len(src),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights have shape {list(w.shape)}; expected [{len(src)}] non-negative, not all 0")
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    var_s = float(w @ np.sum(xs * xs, axis=1))
    if rotations is not None and (_rank_deficient(xs, w, rank_tol) or _rank_deficient(xd, w, rank_tol)):
        R = _chordal_mean_rotation(rotations, w, len(src))
        fit = float(w @ np.sum(xd * (xs @ R.T), axis=1))  # Σ w ⟨y_c, R x_c⟩
        s = fit / var_s if with_scale and var_s > 1e-18 else 1.0
        return s, R, mu_d - s * R @ mu_s
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


def _rank_deficient(centred: np.ndarray, w: np.ndarray, rank_tol: float) -> bool:
    spread = np.linalg.eigvalsh((centred * w[:, None]).T @ centred)  # ascending
    return bool(spread[0] <= rank_tol * max(spread[-1], 1e-300))


def _chordal_mean_rotation(rotations, w: np.ndarray, n: int) -> np.ndarray:
    """argmin_R Σ w_i ‖R − R_dst_i R_src_iᵀ‖_F over SO(3): the weighted mean projected by SVD."""
    r_src = np.asarray(rotations[0], dtype=np.float64)
    r_dst = np.asarray(rotations[1], dtype=np.float64)
    if r_src.shape != (n, 3, 3) or r_dst.shape != (n, 3, 3):
        raise ValueError(
            f"rotations have shapes {list(r_src.shape)} and {list(r_dst.shape)}; expected two [{n}, 3, 3]"
        )
    mean = np.einsum("n,nij,nkj->ik", w, r_dst, r_src)  # Σ w_i R_dst_i R_src_iᵀ
    U, _, Vt = np.linalg.svd(mean)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    return U @ S @ Vt


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


def robust_affine_fit(
    x: np.ndarray,  # [N]
    y: np.ndarray,  # [N]
    *,
    shift: bool = True,
    iterations: int = 10,
    huber: float = 1.345,
    weights: np.ndarray | None = None,  # [N]
) -> tuple[float, float, np.ndarray]:
    """Robust least squares ``y ≈ a x + b`` (``b = 0`` without `shift`): Huber IRLS, then trimmed refits.

    The residual scale is 1.4826 × the median absolute residual (MAD); the Huber threshold is `huber`
    of those scales (1.345: 95 % efficiency on Gaussian noise). After the reweighted iterations the
    points within 3 scales are refitted with plain least squares, repeatedly, until that set stops
    changing (Huber alone converges slowly when the outliers all lie on one side: things in front of
    the state). Returns ``a``, ``b`` and the inlier mask ``[N]`` of the final fit (all points when
    no refit happened). Fewer than 2 points (1 without `shift`) raise ValueError.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"x and y have {len(x)} and {len(y)} values; expected the same number")
    ok = np.isfinite(x) & np.isfinite(y)
    need = 2 if shift else 1
    if ok.sum() < need:
        raise ValueError(f"{int(ok.sum())} finite pairs for an affine fit; expected at least {need}")
    w0 = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w0.shape != x.shape or np.any(w0 < 0):
        raise ValueError(f"weights have shape {list(w0.shape)}; expected [{len(x)}] non-negative")
    w0 = np.where(ok, w0, 0.0)
    xs, ys = np.where(ok, x, 0.0), np.where(ok, y, 0.0)

    def solve(w: np.ndarray) -> tuple[float, float]:
        sw = w.sum()
        if sw <= 0:
            raise ValueError("every point has weight 0; expected some to fit")
        if not shift:
            den = float(w @ (xs * xs))
            return (float(w @ (xs * ys)) / den if den > 0 else 0.0), 0.0
        mx, my = float(w @ xs) / sw, float(w @ ys) / sw
        var = float(w @ (xs - mx) ** 2)
        if var <= 1e-300:  # x constant: only the shift is determined
            return 0.0, my
        a = float(w @ ((xs - mx) * (ys - my))) / var
        return a, my - a * mx

    a, b = solve(w0)
    for _ in range(iterations):
        r = np.abs(a * xs + b - ys)
        sigma = 1.4826 * float(np.median(r[ok])) + 1e-12
        k = huber * sigma
        w = w0 * np.where(r <= k, 1.0, k / np.maximum(r, 1e-300))
        a, b = solve(w)
    inliers = ok & (w0 > 0)
    for _ in range(iterations):  # then least squares on the points within 3 scales, until they settle
        r = np.abs(a * xs + b - ys)
        keep = ok & (w0 > 0) & (r <= 3.0 * (1.4826 * float(np.median(r[ok])) + 1e-12))
        if keep.sum() < need or np.array_equal(keep, inliers):
            break
        inliers = keep
        a, b = solve(w0 * inliers)
    return a, b, inliers
