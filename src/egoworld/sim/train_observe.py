"""`egoworld sim train-observe`: a short way to write an observation run and train it.

The command's options become an `observation:` run config (`observation_run_config`), which the one
trainer (`egoworld.train.train`, the same loop as `egoworld train`) trains in a run folder; the final
model is then copied to `--out` in one step (`train_observation_run`). The run folder is an ordinary
`egoworld train` run: checkpoints, TensorBoard logs and the resolved config.yaml, and a run that was
stopped (killed, or out of `--budget`) resumes where it stopped when the same command runs again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from egoworld.train_config import ObservationTrainConfig, TrainConfig

OBSERVATION_MARKER = "egoworld_observation.json"  # = egoworld.sim.observe.CONFIG_NAME


@dataclass
class TrainObserveOptions:
    """What `sim train-observe` asks for (see `egoworld sim train-observe --help`).

    Args:
        data: tabletop episodes (`egoworld worlds generate --task tabletop`) or a `sim prepare` folder.
        run_dir: the training run folder (checkpoints, logs; where a stopped run resumes).
        preset: `egoworld.sim.observe_config.PRESETS` name of a small model built from random weights.
        height, width: the clip size (None: the preset's; a prepared folder's clips must have it).
        steps, batch, lr: optimizer steps, clips per step, AdamW learning rate (constant).
        budget_s: stop after this many seconds (None: no limit).
        voxel_size, render: how the states of tabletop episodes are fused and rendered.
        use_scene, use_mask: False for the w/o-scene and w/o-mask ablations.
        checkpoint_every: steps between checkpoints.
        seed: random initialisation, data order and noise.
    """

    data: Path
    run_dir: Path
    preset: str = "tiny-pixel"
    height: int | None = None
    width: int | None = None
    steps: int = 1000
    batch: int = 16
    lr: float = 5e-4
    budget_s: float | None = None
    voxel_size: float | None = None
    render: str = "splat"
    use_scene: bool = True
    use_mask: bool = True
    checkpoint_every: int = 100
    seed: int = 0


def observation_run_config(o: TrainObserveOptions) -> TrainConfig:
    """The `egoworld train` config of a `sim train-observe` request (validated)."""
    cfg = TrainConfig(
        run_dir=str(o.run_dir),
        max_steps=o.steps,
        time_budget_s=o.budget_s or 0.0,
        batch_size=o.batch,
        lr_base=o.lr,
        lr_schedule="constant",
        checkpoint_every=min(o.checkpoint_every, o.steps),
        keep_checkpoints=1,
        log_every=10,
        seed=o.seed,
        observation=ObservationTrainConfig(
            preset=o.preset,
            data=str(o.data),
            height=o.height,
            width=o.width,
            voxel_size=o.voxel_size,
            render=o.render,
            use_scene=o.use_scene,
            use_mask=o.use_mask,
        ),
    )
    cfg.validate()
    return cfg


def train_observation_run(cfg: TrainConfig, out: Path, *, progress: bool = True) -> dict:
    """Train (or resume) the observation run `cfg`, then replace `out` with its final model.

    `out` must be new, empty or an earlier observation model (checked before training starts).
    Returns the run's `final_state.json` (the step reached and whether it is max_steps).
    `progress`: the trainer's tqdm bar on stderr.
    """
    from egoworld.io_utils import atomic_dir, check_replaceable
    from egoworld.train import train

    check_replaceable(out, OBSERVATION_MARKER)
    final = train(cfg, progress=progress)
    with atomic_dir(out, replaces=OBSERVATION_MARKER) as tmp:
        shutil.copytree(final, tmp, dirs_exist_ok=True)
    return json.loads((Path(cfg.run_dir) / "final_state.json").read_text())
