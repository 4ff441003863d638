"""Baselines the world models are compared against (the NWM-style frame-wise DiT)."""

from egoworld.baselines.framewise import (
    FramewiseConfig,
    FramewiseDiT,
    FramewiseWorldModel,
    count_denoiser_parameters,
    match_parameter_count,
)

__all__ = [
    "FramewiseConfig",
    "FramewiseDiT",
    "FramewiseWorldModel",
    "count_denoiser_parameters",
    "match_parameter_count",
]
