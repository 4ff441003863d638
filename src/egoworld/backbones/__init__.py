"""Backbone families: one module each (svd, cosmos, wan) with its hook adapter and presets."""

from __future__ import annotations

from torch import nn

from egoworld.backbones.base import BackboneAdapter
from egoworld.backbones.cosmos import CosmosAdapter
from egoworld.backbones.svd import SVDAdapter
from egoworld.backbones.wan import WanAdapter

ADAPTERS: tuple[BackboneAdapter, ...] = (SVDAdapter(), CosmosAdapter(), WanAdapter())


def adapter_for(model: nn.Module) -> BackboneAdapter:
    """The adapter of a diffusers denoiser, or a ValueError listing the supported classes."""
    for adapter in ADAPTERS:
        if isinstance(model, adapter.model_class):
            return adapter
    supported = ", ".join(a.model_class.__name__ for a in ADAPTERS)
    raise ValueError(f"model class {type(model).__name__} is not supported; expected one of: {supported}")


def adapter_by_name(name: str) -> BackboneAdapter:
    for adapter in ADAPTERS:
        if adapter.name == name:
            return adapter
    raise ValueError(f"backbone {name!r} is not known; expected one of {[a.name for a in ADAPTERS]}")
