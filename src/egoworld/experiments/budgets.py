"""How big an internet-prior experiment is: worlds, clip shape, training steps, seeds.

"full" is the run documented in docs/results.md (its training settings are also the defaults of
the YAML files under configs/experiment/); "small" is a ~10-minute rehearsal; "micro" only checks
the plumbing (tests: seconds, meaningless numbers); "long" is the scale of the shipped navigation
model's first stage (configs/nav-dit-residual.yaml: 64 explore walks, 40000 steps at batch 8), for the DiT
configs under configs/experiment/dit/ and a GPU; "medium" is "long" with a quarter of its steps, which
fits one 3-hour session of the 2-core sandbox (the prior and scratch stages side by side, one thread each).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Budget:
    """Args:
    size: model frame side (pixels); render_size: side the worlds are rendered at (then resized).
    preset, num_frames: the model preset (of the stage configs' family) and frames per generated chunk
        (1 condition + rest).
    passive_worlds, passive_frames: unlabeled videos for the prior (one new world each).
    nav_worlds, nav_frames: labeled navigation episodes for action fine-tuning.
    nav_trajectory: how those episodes walk (`worlds generate --trajectory`; None: the nav default).
    eval_worlds, eval_frames: held-out episodes per domain (in-domain and paintings).
    paintings: number of painting images texturing the out-of-domain worlds.
    prior_steps, finetune_steps, batch_size: optimizer steps and clips per step.
    sampling_seeds: rollout seeds (mean ± std over them); inference_steps: sampler steps.
    horizons: scored frame indices.
    """

    size: int
    render_size: int
    preset: str
    num_frames: int
    passive_worlds: int
    passive_frames: int
    nav_worlds: int
    nav_frames: int
    eval_worlds: int
    eval_frames: int
    paintings: int
    prior_steps: int
    finetune_steps: int
    batch_size: int
    sampling_seeds: tuple[int, ...]
    inference_steps: int
    horizons: tuple[int, ...] = (2, 4, 8, 16)
    nav_trajectory: str | None = None


BUDGETS: dict[str, Budget] = {
    "micro": Budget(
        size=16,
        render_size=32,
        preset="tiny",
        num_frames=5,
        passive_worlds=2,
        passive_frames=8,
        nav_worlds=2,
        nav_frames=8,
        eval_worlds=2,
        eval_frames=9,
        paintings=2,
        prior_steps=2,
        finetune_steps=2,
        batch_size=2,
        sampling_seeds=(0,),
        inference_steps=2,
        horizons=(2, 4, 8),
    ),
    "small": Budget(
        size=32,
        render_size=64,
        preset="small",
        num_frames=9,
        passive_worlds=48,
        passive_frames=40,
        nav_worlds=8,
        nav_frames=40,
        eval_worlds=4,
        eval_frames=17,
        paintings=8,
        prior_steps=120,
        finetune_steps=50,
        batch_size=4,
        sampling_seeds=(0, 1),
        inference_steps=12,
    ),
    "full": Budget(
        size=32,
        render_size=64,
        preset="small",
        num_frames=9,
        passive_worlds=200,
        passive_frames=40,
        nav_worlds=24,
        nav_frames=40,
        eval_worlds=6,
        eval_frames=17,
        paintings=16,
        prior_steps=400,
        finetune_steps=200,
        batch_size=2,
        sampling_seeds=(0, 1),
        inference_steps=12,
    ),
    "long": Budget(
        size=32,
        render_size=64,
        preset="small",
        num_frames=9,
        passive_worlds=200,
        passive_frames=40,
        nav_worlds=64,
        nav_frames=40,
        nav_trajectory="explore",
        eval_worlds=16,
        eval_frames=17,
        paintings=16,
        prior_steps=40000,
        finetune_steps=40000,
        batch_size=8,
        sampling_seeds=(0, 1),
        inference_steps=12,
    ),
}
# the long budget's data and evaluation, a quarter of its training steps
BUDGETS["medium"] = replace(BUDGETS["long"], prior_steps=10000, finetune_steps=10000)


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"budget {name!r} is not known; expected one of {sorted(BUDGETS)}")
    return BUDGETS[name]
