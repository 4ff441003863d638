"""Evaluation metrics: SCS (EgoWM Eq. 7), PSNR/SSIM, LPIPS/DreamSim, Depth ERR / Cam ERR, reports.

Submodules import their heavy dependencies lazily; `structural_consistency_score` is the public
Eq. 7 on boolean masks `[T, K, H, W]`.
"""

from egoworld.metrics.scs import scs_by_horizon, structural_consistency_score

__all__ = ["structural_consistency_score", "scs_by_horizon"]
