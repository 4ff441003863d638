"""One Accelerate training loop for every backbone, resumable at any checkpoint.

Multi-GPU / multi-node, FSDP and DeepSpeed come from `accelerate launch` (see configs/accelerate/).
Everything random derives from `seed`: the data order is a permutation per epoch, the noise of
step s on rank r comes from a generator seeded with (seed, s, r). A checkpoint therefore only
needs the weights, optimizer, LR scheduler, EMA and the step counter to continue *exactly*:

    run_dir/
      config.yaml                 the resolved config (a restart with a different one is refused)
      checkpoints/step-00000020/  accelerator state (safetensors) + model/ (save_pretrained) +
                                  trainer_state.json; written to a temporary folder, then renamed
      logs/                       TensorBoard scalars
      samples/step-00000020.mp4   validation rollouts (ground truth | prediction)
      final/                      the trained world model (save_pretrained), EMA weights if enabled
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Sampler

from egoworld.train_config import TrainConfig, differences, from_dict
from egoworld.world_model import WorldModel

logger = logging.getLogger(__name__)
CKPT_RE = re.compile(r"^step-(\d{8})$")


class EpochPermutationSampler(Sampler[int]):
    """A fresh permutation of the dataset every epoch, a pure function of (seed, epoch)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


def collate(items: list[dict]) -> dict:
    out = {k: torch.stack([it[k] for it in items]) for k in ("frames", "actions")}
    if "state" in items[0]:
        out["state"] = torch.stack([it["state"] for it in items])
    return out


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint; half-written ones live under a temporary name and are ignored."""
    ckpts = run_dir / "checkpoints"
    if not ckpts.is_dir():
        return None
    done = sorted(
        p for p in ckpts.iterdir() if CKPT_RE.match(p.name) and (p / "trainer_state.json").is_file()
    )
    return done[-1] if done else None


def _check_run_dir(cfg: TrainConfig, run_dir: Path) -> None:
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        if run_dir.exists() and any(run_dir.iterdir()):
            raise FileExistsError(
                f"run directory {run_dir} is not empty and holds no egoworld run; choose another"
            )
        return
    old = from_dict(yaml.safe_load(saved.read_text())).to_dict()
    diff = differences(old, cfg.to_dict())
    if diff:
        raise ValueError(
            f"run directory {run_dir} holds a run of a different config (differs in {', '.join(diff)}); "
            "use a new --run-dir or the same config"
        )


def _build_model(cfg: TrainConfig, normalizer) -> WorldModel:
    if cfg.init_from:
        model = WorldModel.from_pretrained(cfg.init_from)
        if model.config.action_dim != cfg.model.action_dim:
            raise ValueError(
                f"init_from model has action_dim={model.config.action_dim}; "
                f"config says {cfg.model.action_dim}"
            )
        model.normalizer = normalizer
        return model.train()
    torch.manual_seed(cfg.seed)
    return WorldModel.build(cfg.model, normalizer).train()


def param_groups(cfg: TrainConfig, model: WorldModel) -> list[dict]:
    """Two learning-rate groups: the base denoiser (lr_base) and the action modules (lr_actions)."""
    base_params, action_params = model.trainable_groups()
    if cfg.freeze_base:
        for p in base_params:
            p.requires_grad_(False)
    groups = [{"params": action_params, "lr": cfg.lr_actions, "name": "actions"}]
    if not cfg.freeze_base:
        groups.insert(0, {"params": base_params, "lr": cfg.lr_base, "name": "base"})
    return groups


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) the run in `cfg.run_dir`; returns the folder of the final model."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    from egoworld.data.factory import build_datasets, fit_normalizer

    run_dir = Path(cfg.run_dir)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # without it, CPU processes launched together do not form a group
        gradient_accumulation_steps=cfg.grad_accum,
        mixed_precision=cfg.mixed_precision,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    if accelerator.is_main_process:
        _check_run_dir(cfg, run_dir)
    accelerator.wait_for_everyone()
    resume = latest_checkpoint(run_dir)

    # data and statistics (the statistics travel with the model)
    if resume is not None:
        from egoworld.actions.normalization import ActionNormalizer

        normalizer = ActionNormalizer.load(resume / "model" / "normalization.json")
    else:
        with accelerator.main_process_first():
            normalizer = fit_normalizer(cfg.data, cfg.model)
    with accelerator.main_process_first():
        train_ds, val_ds = build_datasets(cfg.data, cfg.model, normalizer)
    sampler = EpochPermutationSampler(len(train_ds), cfg.seed)
    loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.data.num_workers,
        drop_last=True,
    )
    if len(loader) == 0:
        raise ValueError(f"{len(train_ds)} training clips < batch_size={cfg.batch_size}; lower batch_size")

    model = _build_model(cfg, normalizer)
    if cfg.gradient_checkpointing:
        model.denoiser.enable_gradient_checkpointing()
    groups = param_groups(cfg, model)
    optimizer = torch.optim.AdamW(
        groups, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay, eps=1e-8
    )
    lr_scheduler = get_scheduler(
        cfg.lr_schedule,
        optimizer=optimizer,
        num_warmup_steps=cfg.warmup_steps * accelerator.num_processes,
        num_training_steps=cfg.max_steps * accelerator.num_processes,
    )
    trainable = [p for g in groups for p in g["params"]]
    ema = EMAModel(trainable, decay=cfg.ema_decay) if cfg.ema_decay > 0 else None
    model, optimizer, loader, lr_scheduler = accelerator.prepare(model, optimizer, loader, lr_scheduler)
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)

    step, epoch, batch_in_epoch = 0, 0, 0
    if resume is not None:
        accelerator.load_state(str(resume))
        state = json.loads((resume / "trainer_state.json").read_text())
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        logger.info("resuming %s at step %d", resume, step)
    elif accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if accelerator.is_main_process:
        accelerator.init_trackers("train")

    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not accelerator.is_main_process)
    unwrapped = accelerator.unwrap_model(model)
    while step < cfg.max_steps:
        sampler.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, batch_in_epoch) if batch_in_epoch else loader
        for batch in batches:
            with accelerator.accumulate(model):
                g = torch.Generator().manual_seed(
                    cfg.seed * 1_000_003 + step * 1009 + accelerator.process_index
                )
                loss = model(batch, generator=g)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            batch_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            step += 1
            if ema is not None:
                ema.step(trainable)
            bar.update(1)
            loss_value = accelerator.gather(loss.detach()[None]).mean().item()
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                lrs = {f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups}
                accelerator.log({"loss": loss_value, **lrs}, step=step)
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                _save_checkpoint(
                    accelerator, unwrapped, run_dir, step, epoch, batch_in_epoch, cfg.keep_checkpoints
                )
            if cfg.validate_every and step % cfg.validate_every == 0 and accelerator.is_main_process:
                _validate(
                    unwrapped, val_ds or train_ds, run_dir / "samples" / f"step-{step:08d}.mp4", cfg.seed
                )
            if step >= cfg.max_steps:
                break
        else:
            epoch, batch_in_epoch = epoch + 1, 0
    bar.close()
    accelerator.wait_for_everyone()
    # every rank must hold the same weights; record each rank's checksum to prove it
    checksum = (
        torch.stack([p.detach().double().sum() for p in trainable]).sum().reshape(1).to(accelerator.device)
    )
    checksums = accelerator.gather(checksum).cpu().tolist()
    final = run_dir / "final"
    if accelerator.is_main_process:
        if ema is not None:
            ema.copy_to(trainable)
        unwrapped.save_pretrained(final)
        (run_dir / "final_state.json").write_text(json.dumps({"step": step, "rank_checksums": checksums}))
    accelerator.end_training()
    return final


def _save_checkpoint(
    accelerator, model: WorldModel, run_dir: Path, step, epoch, batch_in_epoch, keep: int
) -> None:
    """Write a checkpoint atomically: everything into `.tmp-step-N`, then one rename."""
    ckpts = run_dir / "checkpoints"
    final = ckpts / f"step-{step:08d}"
    tmp = ckpts / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        model.save_pretrained(tmp / "model")
        state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch}
        (tmp / "trainer_state.json").write_text(json.dumps(state))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        done = sorted(p for p in ckpts.iterdir() if CKPT_RE.match(p.name))
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _validate(model: WorldModel, dataset, out: Path, seed: int) -> None:
    """Roll the model out from a held-out clip's first frame under its actions; save GT | prediction."""
    from egoworld.data.video import write_video

    item = dataset[0]
    frames = ((item["frames"] + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    was_training = model.training
    model.eval()
    pred = model.rollout(
        frames[0], item["actions"].numpy(), state=item.get("state"), seed=seed, normalized=True
    )
    model.train(was_training)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(out, np.concatenate([frames[: len(pred)], pred], axis=2), fps=5)
