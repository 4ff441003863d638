"""`egoworld train` on EgoSim's observation model: the one Accelerate trainer, an `observation:` config.

Data: one synthetic tabletop episode exported in the EgoDex layout and cut by `egoworld sim prepare`
into 9 clips of 9 frames at 32 px (3 held out, batch 2 -> 3 batches an epoch, so 7 steps cross two
epoch boundaries), and one tabletop episode for `egoworld sim`. The runs go through the fork server
of tests/train/conftest.py, as tests/train/test_resume.py: a run killed with SIGKILL after a
checkpoint, while writing one and while writing the final model, then restarted, ends with the
uninterrupted run's weights bit for bit (EMA on). A run from a tiny `WanImageToVideoPipeline` folder
(saved by its own `save_pretrained`) widens it to 52 channels and trains only the DiT: the VAE, CLIP
and the prompt's UMT5 embedding are unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from egoworld.train_config import load_config

from .conftest import ROOT

ARGS = ["--max-steps", "7", "--checkpoint-every", "2", "--keep-checkpoints", "3", "--ema-decay", "0.9",
        "--log-every", "1", "--observation.val-clips", "3"]  # fmt: skip
PROMPT = "the robot turns left"  # words of the tiny UMT5 tokenizer (tests/parity/components.py)


@pytest.fixture(scope="module")
def data(trainer, tmp_path_factory) -> dict[str, Path]:
    """`prep`: 9 prepared clips (9 frames, 32 px); `tabletop`: a 13-frame tabletop episode folder."""
    top = tmp_path_factory.mktemp("egosim")
    egx = top / "egx"
    for argv in (
        ["worlds", "generate", "--task", "tabletop", "--format", "egodex", "--episodes", 1, "--frames", 25,
         "--size", 32, "--seed", 2, "--out", egx, "--no-progress"],
        ["sim", "prepare", egx, "--out", top / "prep", "--size", 32, 32, "--frames", 9, "--stride", 2,
         "--depth", egx / "depth", "--no-progress"],
        ["worlds", "generate", "--task", "tabletop", "--episodes", 1, "--frames", 13, "--size", 32,
         "--seed", 3, "--out", top / "tabletop", "--no-progress"],
    ):  # fmt: skip
        code, log = trainer.run([str(a) for a in argv])
        assert code == 0, log
    return {"prep": top / "prep", "tabletop": top / "tabletop"}


def _argv(run_dir: Path, data: Path, *extra: str) -> list[str]:
    return ["train", str(ROOT / "configs/egosim-tiny.yaml"), "--run-dir", str(run_dir),
            "--observation.data", str(data), *ARGS, *extra]  # fmt: skip


def final_transformer(run_dir: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted((run_dir / "final" / "transformer").glob("*.safetensors")):
        out.update(load_file(f))
    return out


def assert_same_final(a: Path, b: Path) -> None:
    wa, wb = final_transformer(a), final_transformer(b)
    assert wa.keys() == wb.keys() and len(wa) > 10
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"
    sa, sb = (json.loads((r / "final_state.json").read_text()) for r in (a, b))
    assert sa == sb


def _losses(run_dir: Path) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "logs" / "train"))
    events.Reload()
    return [s.value for s in events.Scalars("loss")]


def _one_error_line(log: str) -> str:
    assert "Traceback" not in log, log
    return log.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def straight(trainer, data, tmp_path_factory) -> Path:
    """The uninterrupted reference run (with a validation sample at step 6)."""
    run = tmp_path_factory.mktemp("straight") / "run"
    code, log = trainer.run(_argv(run, data["prep"], "--validate-every", "6"))
    assert code == 0, log
    return run


def test_a_few_steps_train_the_dit_and_the_loss_is_finite(straight):
    from egoworld.sim.observe import ObservationModel

    losses = _losses(straight)
    assert len(losses) == 7 and all(math.isfinite(v) for v in losses), losses
    assert sorted(p.name for p in (straight / "checkpoints").iterdir()) == [
        "step-00000004", "step-00000006", "step-00000007"]  # fmt: skip
    assert (straight / "samples" / "step-00000006.mp4").stat().st_size > 0
    torch.manual_seed(0)  # the run's seed: its random initialisation
    start = ObservationModel.build("tiny").transformer.state_dict()
    end = final_transformer(straight)
    w0, w1 = start["patch_embedding.weight"], end["patch_embedding.weight"]
    assert w0.shape[1] == 16 and not w0[:, 12:].any()  # the skeleton channels start at zero ...
    assert w1[:, 12:].abs().sum() > 0 and not torch.equal(w0[:, :12], w1[:, :12])  # ... and train
    cfg = (straight / "config.yaml").read_text()
    assert "observation:" in cfg and "\nmodel:" not in cfg and "\ndata:" not in cfg


def test_kills_across_epochs_and_during_writes_resume_bit_identical(trainer, data, straight, tmp_path):
    import os

    run = tmp_path / "killed"
    ckpts = run / "checkpoints"
    argv = _argv(run, data["prep"], "--validate-every", "6")

    def writing_final() -> bool:
        return run.is_dir() and any(n.startswith(".final.tmp-") or n == "final" for n in os.listdir(run))

    kill_points = [
        ("after the step-2 checkpoint", lambda: ckpts.is_dir() and any(ckpts.glob("step-*/manifest.json"))),
        (
            "during the step-6 checkpoint write",
            lambda: (ckpts / ".tmp-step-00000006").exists() or (ckpts / "step-00000006").exists(),
        ),
        ("during the final model's write", writing_final),
    ]
    for what, condition in kill_points:
        pid, log = trainer.start(argv)
        assert trainer.kill_when(pid, condition), (
            f"the run ended before it was killed {what}: {log.read_text()}"
        )
    code, log = trainer.run(argv)
    assert code == 0, log
    assert_same_final(straight, run)
    left = [p.name for p in [*run.iterdir(), *ckpts.iterdir()] if ".tmp-" in p.name or ".old-" in p.name]
    assert left == []


def test_the_trained_model_loads_and_egoworld_sim_runs_it(trainer, data, straight, tmp_path):
    from egoworld.sim.observe import ObservationModel

    model = ObservationModel.from_pretrained(straight / "final")
    assert model.config.preset == "tiny" and model.transformer.config.in_channels == 16
    ep = data["tabletop"] / "episode_00000"
    state, actions, out = tmp_path / "s.npz", tmp_path / "a.npz", tmp_path / "sim"
    code, log = trainer.run(["sim", "build-state", "--episode", str(ep), "--out", str(state),
                             "--actions-out", str(actions)])  # fmt: skip
    assert code == 0, log
    code, log = trainer.run(["sim", "--state", str(state), "--actions", str(actions), "--clips", "1", "--out",
                             str(out), "--model", str(straight / "final"), "--steps", "2"])  # fmt: skip
    assert code == 0, log
    import numpy as np

    video = np.load(out / "observation.npy")
    assert video.shape == (9, 32, 32, 3) and video.dtype == np.uint8


def test_two_process_data_parallel_ranks_end_identical(data, tmp_path):
    """DDP over gloo (configs/accelerate/cpu-2proc.yaml): the frozen VAE inside the wrapped model and
    the tiny preset's unused image path (no CLIP: frozen) do not trip DDP; both ranks end equal."""
    import subprocess
    import sys

    from .conftest import ENV

    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "configs/accelerate/cpu-2proc.yaml"), "-m", "egoworld",
           *_argv(tmp_path / "ddp", data["prep"], "--max-steps=3", "--batch-size=1")]  # fmt: skip
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    checksums = json.loads((tmp_path / "ddp" / "final_state.json").read_text())["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]


def test_tabletop_episodes_train_too(trainer, data, tmp_path):
    run = tmp_path / "tabletop"
    code, log = trainer.run(_argv(run, data["tabletop"], "--max-steps=2", "--observation.val-clips=0"))
    assert code == 0, log
    assert len(_losses(run)) == 2
    training = json.loads((run / "final" / "egoworld_observation.json").read_text()).get("training")
    assert training is None or training["data"] == "tabletop episodes"


def test_init_from_an_inp_pipeline_trains_only_the_dit(trainer, data, tmp_path):
    from diffusers import FlowMatchEulerDiscreteScheduler

    from egoworld.sim.observe import ObservationModel
    from egoworld.sim.prompts import cached_prompt_embeds
    from tests.parity.components import tiny_wan_i2v_pipeline

    pipe = tmp_path / "wan-i2v"
    tiny_wan_i2v_pipeline(FlowMatchEulerDiscreteScheduler(shift=3.0)).save_pretrained(pipe)
    run = tmp_path / "inp"
    extra = [
        f"--init-from={pipe}",
        "--max-steps=2",
        f"--observation.prompt={PROMPT}",
        f"--observation.prompt-cache={tmp_path / 'pc'}",
        "--mixed-precision=bf16",
        "--gradient-checkpointing",
        "--observation.text-dropout=0.5",  # Fun-InP's caption and CLIP dropout (0.1 there)
        "--observation.image-dropout=0.5",
    ]
    code, log = trainer.run(_argv(run, data["prep"], *extra))  # fmt: skip
    assert code == 0, log
    model = ObservationModel.from_pretrained(run / "final")
    assert model.transformer.config.in_channels == 52 and model.image_encoder is not None
    assert torch.equal(model.prompt_embeds, cached_prompt_embeds(pipe, PROMPT, 512))
    assert torch.equal(model.empty_prompt_embeds, cached_prompt_embeds(pipe, "", 512))
    assert (model.config.text_dropout, model.config.image_dropout) == (0.5, 0.5)
    for part in ("vae", "image_encoder"):  # frozen: saved as the pipeline holds them
        a = {k: v for f in (pipe / part).glob("*.safetensors") for k, v in load_file(f).items()}
        b = {k: v for f in (run / "final" / part).glob("*.safetensors") for k, v in load_file(f).items()}
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    base = {k: v for f in (pipe / "transformer").glob("*.safetensors") for k, v in load_file(f).items()}
    w = final_transformer(run)["patch_embedding.weight"]
    assert w.shape[1] == 52 and w[:, 36:].abs().sum() > 0  # the zero-initialised hand channels trained
    assert not torch.equal(w[:, :36], base["patch_embedding.weight"])


def _original_layout(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"dim": 24, "in_dim": 36, "out_dim": 16}))
    return folder


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--init-from={tmp}/orig"], "convert it first: egoworld sim convert-inp"),
        (["--init-from={tmp}/empty"], "holds no Wan transformer"),
        (["--init-from={tmp}/nope"], "is not a folder; expected a diffusers Wan 2.1 i2v"),
        (["--observation.preset=wan2.1-fun-14b-inp"], "allow-random-init"),
        (["--observation.val-clips=9"], "holds out all of them"),
        (["--observation.num-frames=13"], "holds clips of 9 frames at 32x32; the model needs 13 frames"),
        (["--observation.data={tmp}/empty"], "holds neither egoworld_sim_data.json"),
        (["--batch-size=7"], "6 training clips < batch_size=7"),
    ],
)
def test_bad_observation_runs_are_one_line_and_write_nothing(trainer, data, tmp_path, extra, needle):
    _original_layout(tmp_path / "orig")
    (tmp_path / "empty").mkdir()
    run = tmp_path / "new" / "run"
    code, log = trainer.run(_argv(run, data["prep"], *[e.replace("{tmp}", str(tmp_path)) for e in extra]))
    assert code == 2, log
    line = _one_error_line(log)
    assert needle in line, line
    assert not (tmp_path / "new").exists()


# the config, without torch ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["--observation.preset=huge"], "observation.preset='huge' is not known"),
        (["--observation.data="], "observation.data is empty"),
        (["--model.family=wan"], "model.family='wan' is not used by an observation run"),
        (["--data.path=/x"], "data.path='/x' is not used by an observation run"),
        (["--lr-actions=1e-3"], "lr_actions=0.001 is not used by an observation run"),
        (["--freeze-base"], "freeze_base=true: an observation run trains the whole DiT"),
        (["--observation.num-frames=8"], "observation.num_frames=8; expected 4k \\+ 1"),
        (["--observation.height=40"], "observation.height=40; expected a positive multiple of 16"),
        (["--observation.action-dropout=1"], r"observation.action_dropout=1.0: expected a finite value in"),
        (["--observation.text-dropout=-0.1"], r"observation.text_dropout=-0.1: expected a finite value in"),
        (["--observation.render=mesh"], "observation.render='mesh' is not known"),
        (["--observation.weights-dtype=fp8"], "observation.weights_dtype='fp8' is not known"),
        (["--observation.val-clips=-1"], "observation.val_clips=-1; expected an integer >= 0"),
        (["--observation.use-scene=maybe"], "observation.use_scene='maybe': expected true or false"),
    ],
)  # fmt: skip
def test_bad_observation_configs_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(ROOT / "configs/egosim-tiny.yaml", overrides)


def test_observation_fields_without_a_preset_are_refused():
    with pytest.raises(ValueError, match="observation.use_scene=False is not used unless observation.preset"):
        load_config(ROOT / "configs/tiny-wan.yaml", ["--observation.use-scene=false"])


def test_the_paper_config_and_the_light_copies_of_names():
    from egoworld.sim.inp_inputs import CLIP_PREPROCESS
    from egoworld.sim.observe_config import PRESETS, preset_config
    from egoworld.sim.render import METHODS
    from egoworld.train_config import CLIP_PREPROCESS as LIGHT_CLIP
    from egoworld.train_config import OBSERVATION_PRESETS, OBSERVATION_SMALL_PRESETS, RENDER_METHODS

    assert set(OBSERVATION_PRESETS) == set(PRESETS) and set(OBSERVATION_SMALL_PRESETS) < set(PRESETS)
    assert set(RENDER_METHODS) == set(METHODS) and set(LIGHT_CLIP) == set(CLIP_PREPROCESS)
    cfg = load_config(ROOT / "configs/egosim-wan2.1-fun-inp-14b.yaml")
    assert (cfg.lr_base, cfg.max_steps, cfg.batch_size * 8) == (1e-5, 4000, 32)  # x 8 processes
    assert (cfg.mixed_precision, cfg.gradient_checkpointing) == ("bf16", True)
    c = preset_config(cfg.observation.preset, **cfg.observation.overrides())
    assert (c.num_frames, c.height, c.width, c.fps, c.use_image_encoder) == (61, 480, 832, 16, True)
    assert (c.image_dropout, c.text_dropout) == (0.1, 0.1)  # Fun-InP's own training recipe
    d = cfg.to_dict()
    assert "observation" in d and "model" not in d and "data" not in d
    assert "observation" not in load_config(ROOT / "configs/tiny-wan.yaml").to_dict()
