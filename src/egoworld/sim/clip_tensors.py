"""Clips ↔ model tensors, and a small trainer for the observation model on cached latents.

The codec, T5 and CLIP are frozen, so a training set is encoded once (`encode_training_clips`:
latents, InP conditions and — for models with CLIP — the first frame's image features) and the DiT
trains on those tensors (`train_observation_model`); the prompt embedding is the model's own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from egoworld.sim.observe import ObservationModel

logger = logging.getLogger(__name__)


def to_model_video(frames_THWC: Any) -> torch.Tensor:
    """uint8 `[T, H, W, 3]` (numpy) → float `[1, T, 3, H, W]` in [-1, 1].

    Computed as diffusers' `VaeImageProcessor` does (x / 255, then 2x − 1), so a frame reaches the
    VAE with the same float values as through `WanImageToVideoPipeline`.
    """
    x = torch.as_tensor(frames_THWC)
    return (x.permute(0, 3, 1, 2).float() / 255.0 * 2.0 - 1.0)[None]


def to_uint8_video(video_BFCHW: torch.Tensor) -> Any:
    """float `[1, F, 3, H, W]` in [-1, 1] → uint8 `[F, H, W, 3]` (numpy)."""
    x = ((video_BFCHW[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def batch_from_clips(clips: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack clips of uint8 `target`/`scene`/`skeleton` `[T, H, W, 3]` and bool `mask` `[T, H, W]`
    (e.g. `egoworld.sim.loop.observation_clip`) into a model batch (`[B, F, 3, H, W]` in [-1, 1],
    mask `[B, F, 1, H, W]`)."""
    if not clips:
        raise ValueError("no clips; expected at least one")
    batch = {k: torch.cat([to_model_video(c[k]) for c in clips]) for k in ("target", "scene", "skeleton")}
    batch["mask"] = torch.stack([torch.as_tensor(c["mask"]) for c in clips])[:, :, None].float()
    return batch


@dataclass
class TrainingTensors:
    """An encoded training set: latents `[N, C, T, h, w]`, InP conditions `[N, 2C + 4, T, h, w]`, and
    CLIP features of the first frames `[N, 257, 1280]` (None for a model without CLIP)."""

    latents: torch.Tensor
    conditions: torch.Tensor
    images: torch.Tensor | None = None


def encode_training_clips(
    model: ObservationModel, clips: list[dict[str, Any]], batch_size: int = 16
) -> TrainingTensors:
    """Encode clips once with the frozen codec (and CLIP): what `train_observation_model` reads."""
    xs, ys, images = [], [], []
    for i in range(0, len(clips), batch_size):
        x0, cond = model.encode_batch(batch_from_clips(clips[i : i + batch_size]))
        xs.append(x0)
        ys.append(cond["y"])
        if cond.get("image") is not None:
            images.append(cond["image"])
    return TrainingTensors(torch.cat(xs), torch.cat(ys), torch.cat(images) if images else None)


def encode_clips(
    model: ObservationModel, clips: list[dict[str, Any]], batch_size: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached training tensors: latents `[N, C, T, h, w]` and InP conditions `[N, 2C + 4, T, h, w]`
    (models with CLIP: `encode_training_clips`, which also keeps the image features)."""
    encoded = encode_training_clips(model, clips, batch_size)
    return encoded.latents, encoded.conditions


def train_observation_model(
    model: ObservationModel,
    latents: torch.Tensor,
    conditions: torch.Tensor,
    *,
    steps: int,
    images: torch.Tensor | None = None,
    batch_size: int = 8,
    lr: float = 3e-4,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    time_budget_s: float | None = None,
    log_every: int = 50,
    progress: bool = False,
) -> list[float]:
    """Train the DiT on cached latents `[N, C, T, h, w]` and InP conditions `[N, 2C + 4, T, h, w]`.

    `images`: CLIP features `[N, L, D]` of the clips' first frames (required when the model has an
    image encoder; `encode_training_clips` makes them). The text condition is the model's prompt
    embedding. AdamW over the transformer only (codec, T5, CLIP frozen), gradient clipping; stops
    after `steps` or `time_budget_s` seconds. With `progress`, a tqdm bar on stderr shows the steps
    and the running loss (mean of the last `log_every` steps). Returns the loss of every step.
    """
    n = latents.shape[0]
    if conditions.shape[0] != n or n < 1:
        raise ValueError(f"{n} latents and {conditions.shape[0]} conditions; expected the same number >= 1")
    if model.image_encoder is not None and images is None:
        raise ValueError(
            "this model has a CLIP image encoder, so training needs the first frames' image features: "
            "pass images= (encode_training_clips(model, clips).images)"
        )
    if images is not None and images.shape[0] != n:
        raise ValueError(f"{images.shape[0]} image features for {n} latents; expected one per clip")
    model.train()
    params = [p for p in model.transformer.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(steps), desc="train-observe", unit="step")
    for step in range(int(steps)):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator)
        cond = {
            "y": conditions[idx],
            "text": model.text_embeddings(len(idx)),
            "image": None if images is None else images[idx],
        }
        loss = model.loss_on_latents(latents[idx], cond, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        losses.append(float(loss.detach()))
        if bar is not None:
            recent = losses[-max(1, log_every) :]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", refresh=False)
            bar.update(1)
        if log_every and (step + 1) % log_every == 0:
            recent = losses[-log_every:]
            logger.info(
                "step %d: loss %.4f (%.0f s)",
                step + 1,
                sum(recent) / len(recent),
                time.perf_counter() - start,
            )
        if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
            logger.info("time budget of %.0f s reached after %d steps", time_budget_s, step + 1)
            break
    if bar is not None:
        bar.close()
    model.eval()
    return losses
