"""`condition_on_actions`: turn an unchanged diffusers video denoiser into an action-conditioned one.

EgoWM §3.2, Eq. 5-6: at every site where the model modulates activations with its timestep
embedding, use e_t + e_a (+ e_s) instead of e_t:

    gamma_m, beta_m = P_m(e_t + e_a + e_s)

The base model's layers and `forward` are untouched. The family adapter (`egoworld.backbones`)
installs hooks on the existing timestep-embedding path; the wrapper computes e_a for the call,
exposes it to the hooks while the base model runs, and removes it afterwards, so calling the base
model directly still gives the base model. The encoder's last layer is zero, so a fresh wrapper
returns exactly what the base returns.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diffusers
import torch
from torch import nn

from egoworld.actions.encoders import ENCODERS, ActionEncoder
from egoworld.backbones import adapter_by_name, adapter_for
from egoworld.io_utils import atomic_dir
from egoworld.weights import load_local

CONFIG_NAME = "egoworld_conditioning.json"


class ActionConditionedModel(nn.Module):
    """A diffusers denoiser plus an `ActionEncoder` whose output is added at the modulation sites.

    `forward(*base_args, actions=[B, F, action_dim], state=[B, state_dim] | None, **base_kwargs)`
    returns exactly what the base model returns. Use `condition_on_actions` to build one.
    """

    def __init__(self, base: nn.Module, action_encoder: ActionEncoder):
        super().__init__()
        self.adapter = adapter_for(base)
        self.base = base
        self.action_encoder = action_encoder
        self._signature = inspect.signature(base.forward)
        self._active: torch.Tensor | None = None
        self._handles = self.adapter.install(base, lambda: self._active)

    # the wrapped model ---------------------------------------------------------------------

    @property
    def action_dim(self) -> int:
        return self.action_encoder.config.action_dim

    @property
    def state_dim(self) -> int | None:
        return self.action_encoder.config.state_dim

    @property
    def temporal_compression(self) -> int:
        return self.adapter.temporal_compression

    @property
    def config(self):
        """The base model's config (pipelines and schedulers read it)."""
        return self.base.config

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    def action_parameters(self) -> Iterator[nn.Parameter]:
        """Only the new parameters (their own learning-rate group; the paper uses 10x the base rate)."""
        return self.action_encoder.parameters()

    def base_parameters(self) -> Iterator[nn.Parameter]:
        return self.base.parameters()

    def enable_gradient_checkpointing(self) -> None:
        self.base.enable_gradient_checkpointing()

    def forward(self, *args: Any, actions: torch.Tensor, state: torch.Tensor | None = None, **kwargs: Any):
        bound = self._signature.bind(*args, **kwargs)
        arguments = dict(bound.arguments)
        actions = self._check_actions(actions)
        prepared = self.adapter.prepare(self.base, arguments, actions.shape[1])
        if actions.shape[0] != prepared.batch_size:
            raise ValueError(
                f"actions have batch size {actions.shape[0]} but the latents have {prepared.batch_size}"
            )
        state = self._check_state(state, prepared.batch_size)
        e_a = self.action_encoder(actions.to(self.action_encoder.dtype), state)  # [B, T, D]
        self._active = e_a
        try:
            return self.base(**prepared.arguments)
        finally:
            self._active = None

    def _check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(actions) or actions.ndim != 3:
            shape = tuple(actions.shape) if torch.is_tensor(actions) else type(actions).__name__
            raise ValueError(f"actions must be a tensor [B, F, action_dim={self.action_dim}]; got {shape}")
        if actions.shape[-1] != self.action_dim:
            raise ValueError(f"actions have width {actions.shape[-1]}; expected action_dim={self.action_dim}")
        if not torch.isfinite(actions).all():
            bad = (~torch.isfinite(actions)).nonzero()[0].tolist()
            raise ValueError(
                f"actions contain NaN or Inf (first at [b, f, d] = {bad}); expected finite values"
            )
        return actions

    def _check_state(self, state: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if state is None:
            return None
        if self.state_dim is None:
            raise ValueError("a state was given but the model was conditioned with state_dim=None")
        if state.ndim != 2 or tuple(state.shape) != (batch, self.state_dim):
            raise ValueError(
                f"state has shape {tuple(state.shape)}; expected [B, state_dim] = {(batch, self.state_dim)}"
            )
        if not torch.isfinite(state).all():
            raise ValueError("state contains NaN or Inf; expected finite values")
        return state.to(self.action_encoder.dtype)

    # saving and loading --------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, *, include_base: bool = True) -> None:
        """Write `action_encoder/` (and `base/`) in diffusers' layout, safetensors only, atomically."""
        with atomic_dir(directory, replaces=CONFIG_NAME) as tmp:
            self.action_encoder.save_pretrained(tmp / "action_encoder", safe_serialization=True)
            if include_base:
                self.base.save_pretrained(tmp / "base", safe_serialization=True)
            meta = {"backbone": self.adapter.name, "base_class": type(self.base).__name__, "format": 1}
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, base: nn.Module | None = None, torch_dtype: torch.dtype | None = None
    ) -> ActionConditionedModel:
        """Load a saved wrapper; `base` reuses an already loaded base model instead of `directory/base`."""
        directory = Path(directory)
        meta_path = directory / CONFIG_NAME
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found; expected a folder written by save_pretrained")
        meta = json.loads(meta_path.read_text())
        if base is None:
            if not (directory / "base" / "config.json").is_file():
                raise FileNotFoundError(f"{directory / 'base'} holds no base model; pass base=... or save it")
            base_cls = getattr(diffusers, meta["base_class"])
            base = load_local(base_cls, directory / "base", torch_dtype=torch_dtype)
        elif adapter_for(base).name != adapter_by_name(meta["backbone"]).name:
            raise ValueError(
                f"base is a {type(base).__name__}; the saved model expects a {meta['base_class']}"
            )
        encoder = load_local(ActionEncoder, directory / "action_encoder")
        return cls(base, encoder.to(base.device))


def condition_on_actions(
    model: nn.Module,
    action_dim: int,
    *,
    state_dim: int | None = None,
    encoder: str = "sincos",
    hidden_dim: int = 256,
    num_frequencies: int = 16,
    feature_scale: float = 1.0,
) -> ActionConditionedModel:
    """Wrap an unchanged diffusers denoiser so that `forward(..., actions=[B, F, action_dim])` works.

    Supported: `UNetSpatioTemporalConditionModel` (SVD, F = T), `CosmosTransformer3DModel`
    (Cosmos Predict2, F = 4(T-1)+1) and `WanTransformer3DModel` (Wan t2v/i2v/InP, F = 4(T-1)+1).
    A fresh wrapper returns exactly the base model's output (zero-initialised last layer).
    """
    adapter = adapter_for(model)
    if encoder not in ENCODERS:
        raise ValueError(f"encoder={encoder!r} is not known; expected one of {ENCODERS}")
    if not isinstance(action_dim, int) or action_dim < 1:
        raise ValueError(f"action_dim={action_dim!r}; expected a positive integer")
    if state_dim is not None and (not isinstance(state_dim, int) or state_dim < 1):
        raise ValueError(f"state_dim={state_dim!r}; expected a positive integer or None")
    action_encoder = ActionEncoder(
        action_dim=action_dim,
        embed_dim=adapter.embed_dim(model),
        encoder=encoder,
        state_dim=state_dim,
        temporal_compression=adapter.temporal_compression,
        hidden_dim=hidden_dim,
        num_frequencies=num_frequencies,
        feature_scale=feature_scale,
    )
    device = next(model.parameters()).device
    return ActionConditionedModel(model, action_encoder.to(device))
