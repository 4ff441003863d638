"""A tiny Depth Anything folder, as transformers saves it (tests need local weights)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_depth_anything(folder: Path, **config) -> Path:
    """A randomly initialised Depth Anything (DINOv2 backbone) + processor, saved with save_pretrained;
    `config` goes to DepthAnythingConfig (e.g. depth_estimation_type="metric", max_depth=2)."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=56,
        patch_size=14,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[16, 16, 16, 16],
        fusion_hidden_size=16,
        head_hidden_size=8,
        reassemble_hidden_size=32,
        patch_size=14,
        **config,
    )
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=False).save_pretrained(folder)
    return folder
