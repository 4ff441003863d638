"""Per-clip prompts in training (`observation.clip_prompts`): the model's per-sample text embeddings, the
trainer's collate (each clip its own prompt's embedding, the model's for a clip without one, the
empty prompt's under text dropout), behaviour unchanged with the option off, exact resume, the config
checks, and `egoworld sim --prompt`. Tiny models: a UMT5 of the tiny transformers' text width (16)
saved with its own `save_pretrained`, 16 px clips of 9 frames."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import UMT5Config, UMT5EncoderModel

from egoworld.cli import main
from egoworld.sim import prompts
from egoworld.sim.observe import ObservationModel
from egoworld.train_config import load_config
from tests.parity.components import tiny_t5

ROOT = Path(__file__).resolve().parents[2]
A, B = "the robot turns left", "the robot walks forward"  # words of the tiny tokenizer


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory) -> Path:
    """A tiny UMT5 (width 16, the tiny presets' text_dim) and T5 tokenizer, saved by their own classes."""
    folder = tmp_path_factory.mktemp("te")
    _, tokenizer = tiny_t5()
    torch.manual_seed(0)
    config = UMT5Config(
        vocab_size=len(tokenizer), d_model=16, d_kv=4, d_ff=24, num_layers=1, num_heads=4,
        relative_attention_num_buckets=8,
    )  # fmt: skip
    UMT5EncoderModel(config).eval().save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    return folder


def embed(folder: Path, prompt: str) -> torch.Tensor:
    return prompts.cached_prompt_embeds(folder, prompt, 512)[0]  # [512, 16]


def _clip(value: int, prompt: str | None) -> dict:
    rng = np.random.default_rng(value)
    video = (rng.integers(0, 64, (9, 16, 16, 3)) + value).astype(np.uint8)  # clip i: 80 i … 80 i + 63
    return {
        "target": video, "scene": video, "mask": np.zeros((9, 16, 16), bool),
        "skeleton": np.zeros_like(video), "K": np.eye(3), "cam_to_world": np.tile(np.eye(4), (9, 1, 1)),
        "hand_keypoints": np.full((9, 2, 21, 3), np.nan, np.float32), "prompt": prompt,
    }  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Three clips (prompts A, B and none) written by `write_clips`, and the same clips without prompts."""
    from egoworld.sim.prepared import write_clips

    top = tmp_path_factory.mktemp("clips")
    meta = {
        "layout": "test",
        "render": "splat",
        "voxel_size": 0.03,
        "fuse_frames": 1,
        "depth": "ground truth",
    }
    clips = [_clip(0, A), _clip(80, B), _clip(160, None)]
    write_clips(top / "prompted", clips, meta)
    write_clips(top / "plain", [{**c, "prompt": None} for c in clips], meta)
    return {"prompted": top / "prompted", "plain": top / "plain"}


def run_config(data: Path, run: Path, steps: int, **observation):
    """A `sim train-observe` run config (tiny-pixel at 16 px, batch 3) with `observation` fields set."""
    from egoworld.sim.train_observe import TrainObserveOptions, observation_run_config

    options = TrainObserveOptions(data, run, height=16, width=16, steps=steps, batch=3, lr=1e-3)
    cfg = observation_run_config(options)
    cfg = dataclasses.replace(
        cfg, checkpoint_every=2, observation=dataclasses.replace(cfg.observation, **observation)
    )
    cfg.validate()
    return cfg


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(next((run / "final" / "transformer").glob("*.safetensors")))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# the model ---------------------------------------------------------------------------------------------


def test_the_model_takes_per_sample_prompt_embeddings(text_encoder):
    torch.manual_seed(0)
    model = ObservationModel.build("tiny-pixel", height=16, width=16, text_encoder=text_encoder).eval()
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(2, 9, 3, 16, 16, generator=g) * 2 - 1 for k in ("target", "scene", "skeleton")}
    batch["mask"] = torch.zeros(2, 9, 1, 16, 16)
    own = model.prompt_embeds.expand(2, -1, -1)
    mine = torch.stack([embed(text_encoder, A), embed(text_encoder, B)])  # [2, 512, 16]

    @torch.no_grad()
    def loss(**kw) -> float:
        return float(model.loss(batch, torch.Generator().manual_seed(1), **kw))

    assert loss() == loss(prompt_embeds=own)  # the buffer by default
    assert loss(prompt_embeds=mine) != loss()
    with torch.no_grad():
        from_batch = float(model({**batch, "prompt_embeds": mine}, torch.Generator().manual_seed(1)))
    assert loss(prompt_embeds=mine) == from_batch
    for bad in (mine[:1], mine[:, :7], torch.zeros(2, 512, 32)):
        with pytest.raises(ValueError, match=r"prompt_embeds has shape .*; expected \[2, 512, 16\]"):
            loss(prompt_embeds=bad)
    out = model.generate(
        batch["scene"], batch["mask"], batch["skeleton"], num_inference_steps=1, prompt_embeds=mine
    )
    assert out.shape == (2, 9, 3, 16, 16)


def test_set_prompt_and_the_sim_command_checks(text_encoder, tmp_path, capsys):
    torch.manual_seed(0)
    model = ObservationModel.build("tiny")  # no text encoder: a zero embedding of 1 token
    model.set_prompt(A, text_encoder)
    assert model.config.prompt == A and torch.equal(model.prompt_embeds[0], embed(text_encoder, A))
    assert torch.equal(model.empty_prompt_embeds[0], embed(text_encoder, ""))
    wide = tmp_path / "wide"  # a T5 of another width than the transformer's text_dim
    encoder, tokenizer = tiny_t5()
    encoder.save_pretrained(wide / "text_encoder")
    tokenizer.save_pretrained(wide / "tokenizer")
    with pytest.raises(ValueError, match=r"expected \[1, L, 16\]"):
        model.set_prompt(B, wide)
    assert model.config.prompt == A  # unchanged by the refusal

    capsys.readouterr()  # the loaders' progress bars
    (tmp_path / "s.npz").write_bytes(b"")
    base = ["sim", "--state", str(tmp_path / "s.npz"), "--actions", str(tmp_path / "s.npz")]
    for extra, needle in (
        (["--prompt", A], "--prompt needs --text-encoder DIR"),
        (["--text-encoder", str(text_encoder)], "--text-encoder is used only to embed --prompt"),
        (["--prompt", A, "--text-encoder", str(tmp_path / "nope")], "--text-encoder"),
    ):
        assert main([*base, *extra, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "out").exists()


# the trainer -------------------------------------------------------------------------------------------


def test_the_trainer_feeds_each_clip_its_prompt_and_resumes_exactly(
    text_encoder, data, tmp_path, monkeypatch
):
    """Each step: the clips with prompts A and B get A's and B's embeddings, the clip without one the
    model's prompt (here ""); after text dropout a clip has its own or the empty prompt's. Killed at a
    checkpoint (a run to step 2, then the same run to step 3) it ends as the straight run."""
    from egoworld.sim.observe_config import TrainingSettings
    from egoworld.train import train

    want = {0: embed(text_encoder, A), 1: embed(text_encoder, B), 2: embed(text_encoder, "")}
    empty = want[2]
    seen: list[tuple[list[int], torch.Tensor]] = []
    dropped: list[torch.Tensor] = []
    encode, velocity = ObservationModel.encode_batch, ObservationModel.velocity

    def spy_encode(self, batch, generator=None, prompt_embeds=None):
        clip = [int(v) // 80 for v in ((batch["target"][:, 0, 0, 0, 0] + 1) * 127.5).round()]
        x0, cond = encode(self, batch, generator, prompt_embeds)
        seen.append((clip, cond["text"].detach().clone()))
        return x0, cond

    def spy_velocity(self, x_t, t, cond):
        dropped.append(cond["text"].detach().clone())
        return velocity(self, x_t, t, cond)

    monkeypatch.setattr(ObservationModel, "encode_batch", spy_encode)
    monkeypatch.setattr(ObservationModel, "velocity", spy_velocity)
    fields = {"clip_prompts": True, "text_encoder": str(text_encoder), "text_dropout": 0.5}
    final = train(run_config(data["prompted"], tmp_path / "straight", 3, **fields), progress=False)
    assert len(seen) == len(dropped) == 3
    for (clips, text), after in zip(seen, dropped):
        assert sorted(clips) == [0, 1, 2]
        for row, k, out in zip(text, clips, after):
            assert torch.equal(row, want[k]), k
            assert torch.equal(out, want[k]) or torch.equal(out, empty)
    swapped = [
        torch.equal(out, empty)
        for (clips, _), after in zip(seen, dropped)
        for k, out in zip(clips, after)
        if k < 2
    ]
    assert any(swapped) and not all(swapped)  # text dropout replaced some of the prompted clips' embeddings

    model = ObservationModel.from_pretrained(final)  # one prompt saved, clip prompts recorded
    assert model.config.prompt == "" and torch.equal(model.prompt_embeds[0], empty)
    assert isinstance(model.config.training, TrainingSettings) and model.config.training.clip_prompts is True

    monkeypatch.undo()
    resumed = tmp_path / "resumed"
    train(run_config(data["prompted"], resumed, 2, **fields), progress=False)
    train(run_config(data["prompted"], resumed, 3, **fields), progress=False)
    assert_same_weights(tmp_path / "straight", resumed)


def test_without_the_option_prompts_change_nothing(data, tmp_path):
    from egoworld.train import train

    train(run_config(data["prompted"], tmp_path / "a", 2), progress=False)
    train(run_config(data["plain"], tmp_path / "b", 2), progress=False)
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    assert ObservationModel.from_pretrained(tmp_path / "a" / "final").config.training.clip_prompts is False


def test_clip_prompts_need_a_text_encoder(data, tmp_path):
    from egoworld.sim.observe_trainer import check_source

    tiny = ROOT / "configs/egosim-tiny.yaml"
    with pytest.raises(ValueError, match="observation.clip_prompts=true needs a text encoder"):
        load_config(tiny, ["--observation.clip-prompts"])
    with pytest.raises(ValueError, match="observation.clip_prompts='maybe': expected true or false"):
        load_config(tiny, ["--observation.clip-prompts=maybe"])
    assert load_config(
        tiny, ["--observation.clip-prompts", "--observation.text-encoder=/te"]
    ).observation.clip_prompts
    torch.manual_seed(0)
    ObservationModel.build("tiny").save_pretrained(tmp_path / "obs")
    cfg = load_config(tiny, ["--observation.clip-prompts", f"--init-from={tmp_path / 'obs'}"])
    with pytest.raises(ValueError, match="an observation model \\(which holds no text encoder\\)"):
        check_source(cfg)
    paper = load_config(ROOT / "configs/egosim-wan2.1-fun-inp-14b.yaml")  # its init_from holds the UMT5
    assert paper.observation.clip_prompts and paper.init_from and not paper.observation.text_encoder
