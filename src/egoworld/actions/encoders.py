"""Action encoders: per-video-frame actions -> one embedding per latent frame (EgoWM §3.2).

    actions  [B, F, action_dim]            (F video frames)
      -> per-frame features (sinusoidal or MLP)        [B, F, hidden]
      -> temporal downsampling (two strided 1D convs)  [B, T, hidden]  when the VAE compresses time by 4
      -> zero-initialised output projection            [B, T, embed_dim] = e_a
    state    [B, state_dim] (optional, Eq. 6) -> the same kind of encoder -> e_s [B, embed_dim],
             added to every latent frame.

The output projection is zero-initialised, so a fresh encoder returns exact zeros and a freshly
conditioned model is exactly its base model.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

ENCODERS = ("sincos", "mlp")


class SinCosFeatures(nn.Module):
    """Each scalar -> `num_frequencies` sine/cosine pairs, concatenated over scalars.

    Uses diffusers' timestep embedding (the same sinusoid the backbones use for t) on
    `scale * x`. The EgoWM release embeds each normalised scalar (about [-1, 1]) at scale 1 with 16
    frequencies: the features are smooth in the action, so nearby actions get nearby features. At
    scale 1000 (the range timesteps see) the fastest sinusoids wrap many times over [-1, 1] and an
    action change of 0.01 moves the features by ~4.7 — close to a hash the MLP must memorise.
    """

    def __init__(self, num_frequencies: int = 16, scale: float = 1.0):
        super().__init__()
        self.num_frequencies = num_frequencies
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., D] -> [..., D * 2 * num_frequencies]
        flat = x.reshape(-1).float()
        emb = get_timestep_embedding(
            flat, 2 * self.num_frequencies, flip_sin_to_cos=True, downscale_freq_shift=0, scale=self.scale
        )
        return emb.reshape(*x.shape[:-1], x.shape[-1] * 2 * self.num_frequencies).to(x.dtype)


def _feature_net(
    kind: str, in_dim: int, hidden_dim: int, num_frequencies: int, scale: float
) -> nn.Sequential:
    if kind == "sincos":  # the SVD variant: sinusoids per scalar, then a small MLP
        return nn.Sequential(
            SinCosFeatures(num_frequencies, scale),
            nn.Linear(in_dim * 2 * num_frequencies, hidden_dim),
            nn.SiLU(),
        )
    if kind == "mlp":  # the Cosmos variant: a deeper MLP on the raw values
        return nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
        )
    raise ValueError(f"encoder={kind!r} is not known; expected one of {ENCODERS}")


class TemporalDownsample(nn.Module):
    """F = 4(T-1)+1 video-frame features -> T latent-frame features with two strided 1D convs.

    Like the causal video VAEs of Wan/Cosmos, the first frame stands alone: it is repeated three
    times in front, giving 4T frames; latent frame 0 sees only video frame 0 and latent frame j
    sees video frames 4j-3 .. 4j. Kernel = stride = 2 twice, so windows never overlap.
    """

    def __init__(self, dim: int, factor: int = 4):
        super().__init__()
        if factor != 4:
            raise ValueError(f"temporal_compression={factor} is not supported; expected 1 or 4")
        self.factor = factor
        self.conv1 = nn.Conv1d(dim, dim, kernel_size=2, stride=2)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size=2, stride=2)
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [B, F, C] -> [B, T, C]
        h = torch.cat([h[:, :1].expand(-1, self.factor - 1, -1), h], dim=1).transpose(1, 2)  # [B, C, 4T]
        h = self.act(self.conv1(h))
        h = self.act(self.conv2(h))
        return h.transpose(1, 2)


def latent_frames(num_video_frames: int, temporal_compression: int) -> int:
    """Number of latent frames for F video frames (F itself, or (F-1)/4+1)."""
    if temporal_compression == 1:
        return num_video_frames
    return (num_video_frames - 1) // temporal_compression + 1


class ActionEncoder(ModelMixin, ConfigMixin):
    """Maps per-video-frame actions (and an optional initial state) to per-latent-frame embeddings.

    Args:
        action_dim: width of one action vector (3 for navigation, 25 for the 1X humanoid).
        embed_dim: the backbone's timestep-embedding width at the modulation sites.
        encoder: "sincos" (sinusoids + MLP, the SVD variant) or "mlp" (the Cosmos variant).
        state_dim: width of the initial state (Eq. 6), or None.
        temporal_compression: 1 (SVD: F = T) or 4 (Wan/Cosmos VAEs: F = 4(T-1)+1).
        hidden_dim: width of the per-frame features.
        num_frequencies: sinusoid frequencies per scalar (the EgoWM release: 16, i.e. 32 features).
        feature_scale: multiplies each scalar before the sinusoids (the release: 1; models saved
            before this option existed used 1000 and say so in their config).
    """

    @register_to_config
    def __init__(
        self,
        action_dim: int,
        embed_dim: int,
        encoder: str = "sincos",
        state_dim: int | None = None,
        temporal_compression: int = 1,
        hidden_dim: int = 256,
        num_frequencies: int = 16,
        feature_scale: float = 1.0,
    ):
        super().__init__()
        if action_dim < 1 or embed_dim < 1:
            raise ValueError(f"action_dim={action_dim} and embed_dim={embed_dim} must be >= 1")
        self.features = _feature_net(encoder, action_dim, hidden_dim, num_frequencies, feature_scale)
        self.downsample = (
            TemporalDownsample(hidden_dim, temporal_compression) if temporal_compression > 1 else None
        )
        self.proj_out = nn.Linear(hidden_dim, embed_dim)
        self.state_features = (
            _feature_net(encoder, state_dim, hidden_dim, num_frequencies, feature_scale)
            if state_dim
            else None
        )
        self.state_proj_out = nn.Linear(hidden_dim, embed_dim) if state_dim else None
        self.zero_init_outputs()
        # centred: e_a(a) - e_a(0), the embedding of zero actions (the mean action, once normalised)
        # subtracted, so the path carries only what the actions say; set by WorldModel from
        # `WorldModelConfig.action_center` (no weights change, so it is not part of this config)
        self.center = False

    def zero_init_outputs(self) -> None:
        """Zero the last layers: the encoder then outputs exact zeros (a fresh model == its base)."""
        for layer in (self.proj_out, self.state_proj_out):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def _hidden(self, actions: torch.Tensor) -> torch.Tensor:  # [B, F, action_dim] -> [B, T, hidden]
        h = self.features(actions)  # [B, F, hidden]
        return self.downsample(h) if self.downsample is not None else h

    def num_latent_frames(self, num_video_frames: int) -> int:
        return latent_frames(num_video_frames, self.config.temporal_compression)

    def forward(self, actions: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """actions [B, F, action_dim], state [B, state_dim] or None -> e_a (+ e_s) [B, T, embed_dim]."""
        h = self._hidden(actions)  # [B, T, hidden]
        if self.center:  # e_a(a) - e_a(0) = W (h(a) - h(0)), exactly 0 for zero actions
            emb = self.proj_out(h - self._hidden(torch.zeros_like(actions))) - self.proj_out.bias
        else:
            emb = self.proj_out(h)  # [B, T, embed_dim]
        if state is not None:
            if self.state_features is None:
                raise ValueError("a state was given but this encoder was built with state_dim=None")
            emb = emb + self.state_proj_out(self.state_features(state))[:, None]  # Eq. 6: + e_s
        return emb
