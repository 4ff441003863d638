"""One Accelerate training loop for every backbone, resumable at any checkpoint.

Multi-GPU / multi-node, FSDP and DeepSpeed come from `accelerate launch` (see configs/accelerate/).
Everything random derives from `seed`: the data order is a permutation per epoch (for a `data.mixture`,
the weighted draws of `egoworld.data.mixture.MixtureSampler`), a pure function of (seed, epoch); the
noise of step s on rank r comes from a generator seeded with (seed, s, r). A checkpoint therefore only
needs the weights, optimizer, LR scheduler, EMA and the step counter to continue *exactly*:

    run_dir/
      .lock                       held (flock) by the one trainer working on this folder
      config.yaml                 the resolved config (a restart with a different one is refused)
      checkpoints/step-00000020/  accelerator state (safetensors weights, optimizer, scheduler, RNG) +
                                  ema.safetensors + ema.json (if EMA) + model/ (save_pretrained) +
                                  trainer_state.json + manifest.json (size and sha256 of every file);
                                  written to `.tmp-step-N`, then renamed
      logs/                       TensorBoard scalars
      samples/step-00000020.mp4   validation rollouts (ground truth | prediction)
      final/                      the trained model (save_pretrained), EMA weights if enabled

The same loop trains EgoSim's observation model when the config has an `observation:` section: the
model, its data, which checkpoints it can resume and its validation sample come from
`egoworld.sim.observe_trainer.ObservationTask` instead of `WorldModelTask`.

On start, the trainer takes the lock, removes the temporary folders a killed run left behind, and
resumes from the newest checkpoint whose manifest verifies and which loads; a checkpoint that fails
either is skipped with a warning and the one before it is used.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Sampler

from egoworld.checkpoints import (
    TRAINER_STATE,
    _first_line,
    checkpoint_folders,
    load_ema,
    newest_usable,
    read_trainer_state,
    save_ema,
    step_of,
    write_manifest,
)
from egoworld.errors import EgoworldError
from egoworld.io_utils import atomic_path
from egoworld.train_config import TrainConfig, differences, from_dict, validate
from egoworld.world_model import WorldModel

logger = logging.getLogger(__name__)
LOCK = ".lock"
# What a killed run can leave behind: checkpoint and final-model writes in progress (io_utils.atomic_dir,
# atomic_path), and the previous copy of a checkpoint being replaced.
STALE = {
    "": (".final.tmp-", ".final.old-", ".config.yaml.", ".final_state.json."),
    "checkpoints": (".tmp-step-", ".old-step-"),
    "samples": (".step-",),
}


class EpochPermutationSampler(Sampler[int]):
    """A fresh permutation of the dataset every epoch, a pure function of (seed, epoch).

    Accelerate's prepared DataLoader calls `set_epoch` with its own pass counter at the start of every
    pass; that counter starts at 0 in every process, a resumed one included. Once the training loop has
    `pin_epoch`-ed the sampler, `set_epoch` calls are ignored, so no counter can change the order.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0
        self._pinned = False

    def set_epoch(self, epoch: int) -> None:
        if not self._pinned:
            self.epoch = epoch

    def pin_epoch(self, epoch: int) -> None:
        """Set the epoch for the next pass; later `set_epoch` calls (from a wrapping loader) are ignored."""
        self.epoch, self._pinned = epoch, True

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


def epoch_batches(accelerator, loader, sampler, epoch: int, skip: int):
    """The batches of `epoch`, from batch `skip` on, in the order fixed by (seed, epoch).

    `loader` is Accelerate's prepared DataLoader. Its `set_epoch` sets the pass counter that it (and
    `skip_first_batches`, which copies it) hands to the sampler; the sampler is pinned as well.
    """
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    sampler.pin_epoch(epoch)
    return accelerator.skip_first_batches(loader, skip) if skip else loader


def collate(items: list[dict]) -> dict:
    out = {k: torch.stack([it[k] for it in items]) for k in ("frames", "actions")}
    if "state" in items[0]:
        out["state"] = torch.stack([it["state"] for it in items])
    return out


# the run folder: lock, checks, stale temporary folders -------------------------------------------------


def lock_run_dir(run_dir: Path) -> int:
    """Take `run_dir/.lock` (exclusive, non-blocking) and return its descriptor; EgoworldError if taken."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise EgoworldError(
            f"run directory {run_dir} is in use by another trainer (it holds {run_dir / LOCK}); "
            "wait for it to finish or choose another --run-dir"
        ) from None
    return fd


def _is_ours_or_empty(run_dir: Path) -> None:
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise FileExistsError(f"run directory {run_dir} exists and is not a folder; choose another --run-dir")
    if not (run_dir / "config.yaml").is_file() and any(p.name != LOCK for p in run_dir.iterdir()):
        raise FileExistsError(
            f"run directory {run_dir} is not empty and holds no egoworld run; choose another"
        )


def _check_run_dir(cfg: TrainConfig, run_dir: Path) -> None:
    _is_ours_or_empty(run_dir)
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    try:
        old = from_dict(yaml.safe_load(saved.read_text())).to_dict()
    except (ValueError, yaml.YAMLError) as err:
        raise ValueError(
            f"{saved} is not a readable egoworld config ({_first_line(err)}); use a new --run-dir"
        ) from None
    diff = differences(old, cfg.to_dict())
    if diff:
        raise ValueError(
            f"run directory {run_dir} holds a run of a different config (differs in {', '.join(diff)}); "
            "use a new --run-dir or the same config"
        )


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Remove what killed writes left in `run_dir` (only call it while holding the run's lock)."""
    removed = []
    for sub, prefixes in STALE.items():
        folder = run_dir / sub if sub else run_dir
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if p.name.startswith(prefixes):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                removed.append(p)
    if removed:
        logger.warning("removed %d temporary file(s) left by a killed run: %s", len(removed), removed[0].name)
    return removed


def _remove_empty_parents(folder: Path, up_to: Path) -> None:
    """rmdir the (empty) parents of `folder` that this run created, up to and including `up_to`."""
    if folder == up_to:
        return
    for parent in folder.parents:
        try:
            parent.rmdir()  # only if empty: another run may have started in it meanwhile
        except OSError:
            return
        if parent == up_to:
            return


def _everywhere(accelerator, fn: Callable[[], Any]) -> Any:
    """Run `fn` on the main process; every process returns its result or raises its error (no rank hangs)."""
    from accelerate.utils import broadcast_object_list

    payload: list[Any] = [None]
    error = None
    if accelerator.is_main_process:
        try:
            payload[0] = ("ok", fn())
        except (EgoworldError, ValueError, FileNotFoundError, FileExistsError) as err:
            error, payload[0] = err, (type(err).__name__, str(err))
    if accelerator.num_processes > 1:
        broadcast_object_list(payload)
    if error is not None:
        raise error
    kind, value = payload[0]
    if kind != "ok":
        cls = {c.__name__: c for c in (EgoworldError, ValueError, FileNotFoundError, FileExistsError)}[kind]
        raise cls(value)
    return value


def _all_ranks_true(accelerator, flag: bool) -> bool:
    if accelerator.num_processes == 1:
        return flag
    ok = accelerator.gather(torch.tensor([1.0 if flag else 0.0], device=accelerator.device))
    return bool(ok.min().item() > 0)


# model and optimizer ---------------------------------------------------------------------------------


def _build_model(cfg: TrainConfig, normalizer) -> WorldModel:
    from egoworld.model_init import initial_model

    torch.manual_seed(cfg.seed)  # random initialisation (and fresh action encoders) from the run's seed
    model = initial_model(cfg.model, cfg.init_from, normalizer, allow_random_init=cfg.allow_random_init)
    if cfg.compile:
        model.denoiser.base.compile(backend=cfg.compile)  # in place: the action hooks stay attached
    return model.train()


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


# the loop --------------------------------------------------------------------------------------------


def train(cfg: TrainConfig, *, progress: bool = True) -> Path:
    """Train (or resume) the run in `cfg.run_dir`; returns the folder of the final model.

    Raises EgoworldError when another trainer holds the run folder, when every checkpoint of the run
    is unusable, or when the loss stops being finite (the last good checkpoint is kept, no final model
    is written); ValueError / FileNotFoundError on a bad config or input. `progress`: a tqdm bar with
    the step and the loss on stderr (main process only).
    """
    validate(cfg)
    if cfg.init_from and not Path(cfg.init_from).is_dir():
        expected = (
            "a diffusers Wan 2.1 i2v / Fun-InP folder or an observation model folder"
            if cfg.is_observation
            else "a world model written by save_pretrained"
        )
        raise FileNotFoundError(f"init_from={cfg.init_from} is not a folder; expected {expected}")
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    run_dir = Path(cfg.run_dir)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # without it, CPU processes launched together do not form a group
        gradient_accumulation_steps=cfg.grad_accum,
        mixed_precision=cfg.mixed_precision,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    lock: dict[str, Any] = {"fd": None, "created": None}

    def claim() -> None:
        _is_ours_or_empty(run_dir)  # before writing anything into a folder that is not ours
        if not run_dir.exists():  # the outermost folder this run creates
            top = run_dir.absolute()
            while not top.parent.exists():
                top = top.parent
            lock["created"] = top
        try:
            lock["fd"] = lock_run_dir(run_dir)
        except OSError as err:
            raise EgoworldError(f"cannot use run directory {run_dir}: {err}") from None
        _check_run_dir(cfg, run_dir)
        remove_stale_temporaries(run_dir)

    try:
        _everywhere(accelerator, claim)
        return _train(cfg, accelerator, run_dir, progress)
    except BaseException:
        if accelerator.is_main_process and lock["fd"] is not None and not (run_dir / "config.yaml").exists():
            # nothing of this run was written: leave the file system as it was found
            if lock["created"] is not None:
                shutil.rmtree(run_dir, ignore_errors=True)
                _remove_empty_parents(run_dir.absolute(), up_to=lock["created"])
            else:
                (run_dir / LOCK).unlink(missing_ok=True)
        raise
    finally:
        if lock["fd"] is not None:
            os.close(lock["fd"])  # releases the flock


class WorldModelTask:
    """A world model's parts for the loop (`_train`): its checkpoints, data, model, validation.

    The loop needs of a task: `newest_usable(run_dir, below)` (the checkpoint to resume),
    `datasets(accelerator, resume)` -> (train, validation or None, sampler), `collate` and
    `num_workers` for the DataLoader, `build()` -> (model, parameter groups) where
    `model(batch, generator=g)` is the loss and `model.save_pretrained(folder)` writes it, and
    `validate(model, dataset, out, seed)`. `egoworld.sim.observe_trainer.ObservationTask` is the other.
    """

    collate = staticmethod(collate)
    newest_usable = staticmethod(newest_usable)

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.normalizer = None

    @property
    def num_workers(self) -> int:
        return self.cfg.data.num_workers

    def datasets(self, accelerator, resume: Path | None):
        from egoworld.actions.normalization import ActionNormalizer
        from egoworld.data.factory import build_datasets, fit_normalizer
        from egoworld.data.mixture import MixtureDataset
        from egoworld.model_init import check_model_source

        cfg = self.cfg
        # data and statistics (the statistics travel with the model)
        if resume is not None:
            self.normalizer = ActionNormalizer.load(resume / "model" / "normalization.json")
        else:  # the weights' source is checked before any data is read
            check_model_source(cfg.model, cfg.init_from, allow_random_init=cfg.allow_random_init)
            with accelerator.main_process_first():
                self.normalizer = fit_normalizer(cfg.data, cfg.model)
        with accelerator.main_process_first():
            train_ds, val_ds = build_datasets(cfg.data, cfg.model, self.normalizer)
        if isinstance(train_ds, MixtureDataset):  # data.mixture: weighted draws, a function of (seed, epoch)
            sampler = train_ds.sampler(cfg.seed)
        else:
            sampler = EpochPermutationSampler(len(train_ds), cfg.seed)
        return train_ds, val_ds, sampler

    def build(self) -> tuple[WorldModel, list[dict]]:
        model = _build_model(self.cfg, self.normalizer)
        if self.cfg.gradient_checkpointing:
            model.denoiser.enable_gradient_checkpointing()
        return model, param_groups(self.cfg, model)

    @staticmethod
    def validate(model: WorldModel, dataset, out: Path, seed: int) -> None:
        _validate(model, dataset, out, seed)


def _task(cfg: TrainConfig, progress: bool):
    if cfg.is_observation:
        from egoworld.sim.observe_trainer import ObservationTask

        return ObservationTask(cfg, progress=progress)
    return WorldModelTask(cfg)


def _train(cfg: TrainConfig, accelerator, run_dir: Path, progress: bool = True) -> Path:
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    task = _task(cfg, progress and accelerator.is_main_process)
    resume, problems = _everywhere(accelerator, lambda: task.newest_usable(run_dir))
    train_ds, val_ds, sampler = task.datasets(accelerator, resume)
    loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=task.collate,
        num_workers=task.num_workers,
        drop_last=True,
    )
    if len(loader) == 0:
        raise ValueError(f"{len(train_ds)} training clips < batch_size={cfg.batch_size}; lower batch_size")

    model, groups = task.build()
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
        ema.to(accelerator.device)  # not registered with Accelerate: saved by save_ema / load_ema

    step, epoch, batch_in_epoch = 0, 0, 0
    while resume is not None:
        try:
            accelerator.load_state(str(resume))
            if ema is not None:
                load_ema(ema, resume)
            step, epoch, batch_in_epoch = read_trainer_state(resume)
            loaded = True
        except Exception as err:  # noqa: BLE001 - a checkpoint that does not load is skipped
            logger.warning(
                "checkpoint %s does not load (%s: %s)", resume, type(err).__name__, _first_line(err)
            )
            problems.append(f"{resume.name}: does not load ({_first_line(err)})")
            loaded = False
        if _all_ranks_true(accelerator, loaded):
            logger.info("resuming %s at step %d", resume, step)
            break
        resume, more = _everywhere(
            accelerator, lambda r=resume: task.newest_usable(run_dir, below=step_of(r))
        )
        problems += more
    if resume is None and problems:
        raise EgoworldError(
            f"run directory {run_dir} has checkpoints but none is usable ({'; '.join(problems)}); "
            "move its checkpoints/ folder away to start the run over"
        )
    if resume is None:
        step, epoch, batch_in_epoch = 0, 0, 0
        if accelerator.is_main_process and not (run_dir / "config.yaml").exists():
            with atomic_path(run_dir / "config.yaml") as tmp:
                tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if accelerator.is_main_process:
        accelerator.init_trackers("train")

    show = progress and accelerator.is_main_process
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not show)
    unwrapped = accelerator.unwrap_model(model)
    last_saved = resume
    nonfinite = torch.zeros((), device=accelerator.device)  # non-finite micro-step losses since the last step
    started, out_of_time = time.monotonic(), False
    while step < cfg.max_steps and not out_of_time:
        for batch in epoch_batches(accelerator, loader, sampler, epoch, batch_in_epoch):
            with accelerator.accumulate(model):
                g = torch.Generator(device=accelerator.device).manual_seed(
                    cfg.seed * 1_000_003 + step * 1009 + accelerator.process_index
                )
                loss = model(batch, generator=g)
                nonfinite += (~torch.isfinite(loss.detach())).float()
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
                try:
                    optimizer.step()
                except RuntimeError as err:  # e.g. lr_base=1e38: Adam's step size overflows float32
                    if "overflow" not in str(err):
                        raise
                    bar.close()
                    raise EgoworldError(
                        f"the optimizer step overflowed at step {step + 1} ({err}); no final model was "
                        f"written; lower lr_base/lr_actions (they are {cfg.lr_base:g}/{cfg.lr_actions:g})"
                    ) from None
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            batch_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            step += 1
            elapsed = torch.tensor(time.monotonic() - started, device=accelerator.device)
            stats = accelerator.gather(torch.stack([loss.detach().float(), nonfinite, elapsed])[None])
            loss_value, bad = stats[:, 0].mean().item(), stats[:, 1].sum().item() > 0  # stats [P, 3]
            # every rank stops at the same step: the slowest rank's clock decides
            out_of_time = 0 < cfg.time_budget_s < stats[:, 2].max().item() and step < cfg.max_steps
            nonfinite.zero_()
            if bad or not math.isfinite(loss_value):
                bar.close()
                kept = f"last good checkpoint: {last_saved}" if last_saved else "no checkpoint was written"
                raise EgoworldError(
                    f"the loss is {loss_value} at step {step} (not finite); training stopped and no final "
                    f"model was written ({kept}); lower lr_base/lr_actions or set max_grad_norm"
                )
            if ema is not None:
                ema.step(trainable)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                lrs = {f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups}
                accelerator.log({"loss": loss_value, **lrs}, step=step)
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps or out_of_time:
                last_saved = _save_checkpoint(
                    accelerator, unwrapped, ema, run_dir, step, epoch, batch_in_epoch, cfg.keep_checkpoints
                )
            if cfg.validate_every and step % cfg.validate_every == 0 and accelerator.is_main_process:
                task.validate(
                    unwrapped, val_ds or train_ds, run_dir / "samples" / f"step-{step:08d}.mp4", cfg.seed
                )
            if step >= cfg.max_steps or out_of_time:
                break
        else:
            epoch, batch_in_epoch = epoch + 1, 0
    bar.close()
    if out_of_time:
        logger.info("time_budget_s=%g reached at step %d of %d", cfg.time_budget_s, step, cfg.max_steps)
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
        with atomic_path(run_dir / "final_state.json") as tmp:
            state = {"step": step, "completed": step >= cfg.max_steps, "rank_checksums": checksums}
            tmp.write_text(json.dumps(state))
    accelerator.end_training()
    return final


def _save_checkpoint(accelerator, model, ema, run_dir: Path, step, epoch, batch_in_epoch, keep: int) -> Path:
    """Write a checkpoint atomically: everything into `.tmp-step-N`, the manifest last, then one rename."""
    ckpts = run_dir / "checkpoints"
    final = ckpts / f"step-{step:08d}"
    tmp = ckpts / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()  # every rank's RNG file is written before the manifest
    if accelerator.is_main_process:
        model.save_pretrained(tmp / "model")
        if ema is not None:
            save_ema(ema, tmp)
        state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch}
        (tmp / TRAINER_STATE).write_text(json.dumps(state))
        write_manifest(tmp)
        if final.exists():  # a checkpoint of this step from an earlier attempt: replace it
            old = ckpts / f".old-step-{step:08d}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        # rotate: only checkpoints up to this step count (a newer, unusable one is never the reason to
        # delete a good older one)
        done = [p for p in checkpoint_folders(run_dir) if step_of(p) <= step]
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


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
