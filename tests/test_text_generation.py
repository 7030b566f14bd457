"""Text-to-image end to end on a tiny captioned folder: tokenize with captions, `train ar|nar --text-encoder`, the
cached text states, caption dropout, `semtok sample --prompt`, provenance, and one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semtok.cli import main
from semtok.generators.sampler import Sampler
from semtok.generators.sampling import SamplingConfig
from semtok.pipelines.tokenize import tokenize_dataset
from semtok.training.captions import CaptionCondition
from semtok.visual.provenance import read_provenance
from test_cli_masked import fsq_tokenizer, one_line_error

TINY = [
    "model.depth=1",
    "model.width=32",
    "model.heads=2",
    "model.dropout=0.0",
    "model.text_len=8",
    "train.steps=3",
    "train.batch_size=4",
    "train.warmup_steps=1",
    "train.checkpoint_every=2",
    "train.log_every=1",
]
CLASS_TINY = [key for key in TINY if not key.startswith("model.text_len")]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 60, 230)}


def captioned_folder(root: Path) -> Path:
    """12 images of 32 px squares in three colours with a captions.jsonl (two captions for the red ones)."""
    root.mkdir(parents=True)
    lines = []
    for i in range(12):
        name = list(COLOURS)[i % 3]
        pixels = np.zeros((32, 32, 3), np.uint8)
        pixels[8:24, 8:24] = COLOURS[name]
        Image.fromarray(pixels).save(root / f"{i:02d}.png")
        lines.append({"file": f"{i:02d}.png", "caption": f"a {name} square"})
        if name == "red":
            lines.append({"file": f"{i:02d}.png", "caption": "a square in red"})
    (root / "captions.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return root


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("t2i")
    tokenizer = fsq_tokenizer(root / "tok", (4, 3))
    images = captioned_folder(root / "images")
    tokens = tokenize_dataset(tokenizer, str(images), "train", root / "tokens", progress=False)
    (root / "plain").mkdir()
    for image in sorted(images.glob("*.png"))[:6]:
        (root / "plain" / image.name).write_bytes(image.read_bytes())
    plain = tokenize_dataset(tokenizer, str(root / "plain"), "train", root / "plain_tokens", progress=False)
    runs = {}
    for stage in ("ar", "nar"):
        args = ["train", stage, "--tokens", str(tokens), "--text-encoder", "minilm-l6"]
        args += ["--out", str(root / stage), "--no-progress"]
        assert main([*args, *[a for key in TINY for a in ("--set", key)]]) == 0
        runs[stage] = root / stage
    return {"root": root, "tokens": tokens, "val": plain, **runs}


def test_text_runs_record_the_encoder_and_reuse_the_cached_states(text_run):
    config = json.loads((text_run["ar"] / "ar" / "config.json").read_text())
    assert config["config"]["text_encoder"] == "minilm-l6"
    assert config["config"]["text_dim"] == 384 and config["config"]["text_len"] == 8
    states = Path(config["info"]["text_states"])
    assert states.is_file() and states.name == "tokens.text-minilm-l6-8.npy"
    stamp = states.stat().st_mtime_ns
    condition = CaptionCondition(text_run["tokens"], "minilm-l6", "", 8, progress=False)
    assert states.stat().st_mtime_ns == stamp  # reused, not re-encoded
    assert (
        condition.states.embeddings.shape[1:] == (8, 384) and condition.states.embeddings.dtype == np.float16
    )
    assert len(condition.states) == 4  # 3 colours + the second red caption, each encoded once


def test_caption_dropout_and_the_choice_among_captions(text_run):
    condition = CaptionCondition(text_run["tokens"], "minilm-l6", "", 8, progress=False)
    rows = torch.arange(len(condition)).repeat(400)
    torch.manual_seed(0)
    out = condition.condition(rows, torch.device("cpu"), dropout=0.1)
    assert abs(float(out["dropped_B"].float().mean()) - 0.1) < 0.02
    multi = int(torch.nonzero(condition.counts == 2)[0])  # a red image: two captions, each picked about half
    picked = condition.condition(torch.full((2000,), multi), torch.device("cpu"))["text"][0]
    first = condition.condition(torch.tensor([multi]), torch.device("cpu"), pick=False)["text"][0]
    share = float((picked == first).flatten(1).all(1).float().mean())
    assert 0.4 < share < 0.6
    assert not condition.condition(rows[:8], torch.device("cpu"))["dropped_B"].any()


@pytest.mark.parametrize("stage", ["ar", "nar"])
def test_sample_prompts_with_provenance(text_run, stage, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red square\n\nthe blue one\n")
    out = tmp_path / "grid.png"
    args = ["sample", str(text_run[stage]), "--prompts", str(prompts), "--n", "2", "--out", str(out)]
    assert main([*args, "--cfg", "2", "--no-progress", "--images", str(tmp_path / "one")]) == 0
    assert "4 images" in capsys.readouterr().out
    record = read_provenance(out)
    assert record["condition"] == "text" and record["prompts"] == ["a red square"] * 2 + ["the blue one"] * 2
    assert record["text_encoder"] == {"name": "minilm-l6", "weights": "(registry default)", "text_len": 8}
    single = read_provenance(tmp_path / "one" / "00003_prompt.png")
    assert single["prompts"] == ["the blue one"] and single["index"] == 3


@pytest.mark.parametrize("stage", ["ar", "nar"])
def test_an_empty_prompt_is_the_unconditional_path(text_run, stage):
    sampler = Sampler(text_run[stage])
    guided = sampler.sample(prompts=["", " "], sampling=SamplingConfig(cfg_scale=4.0), seed=3)[1]
    plain = sampler.sample(prompts=["", " "], sampling=SamplingConfig(cfg_scale=1.0), seed=3)[1]
    assert torch.equal(guided, plain)  # u + s (c - u) = u when the condition is the null prefix
    other = sampler.sample(prompts=["a red square"] * 2, sampling=SamplingConfig(cfg_scale=1.0), seed=3)[1]
    assert other.shape == plain.shape


def test_text_and_class_runs_refuse_each_other(text_run, tmp_path, capsys):
    out = str(tmp_path / "x.png")
    line = one_line_error(["sample", str(text_run["ar"]), "--class", "1", "--out", out], capsys)
    assert "text model" in line and "--prompt" in line
    class_run = tmp_path / "class"
    args = ["train", "ar", "--tokens", str(text_run["tokens"]), "--out", str(class_run), "--no-progress"]
    assert main([*args, *[a for key in CLASS_TINY for a in ("--set", key)]]) == 0
    line = one_line_error(["sample", str(class_run), "--prompt", "a red square", "--out", out], capsys)
    assert "class-conditional" in line
    with pytest.raises(Exception, match="class labels, not prompts"):
        Sampler(class_run).sample(prompts=["a red square"])


def test_text_training_bad_input_is_one_line(text_run, tmp_path, capsys):
    base = ["train", "ar", "--out", str(tmp_path / "run"), "--no-progress"]
    line = one_line_error([*base, "--tokens", str(text_run["tokens"]), "--text-encoder", "bert-xxl"], capsys)
    assert "unknown text encoder 'bert-xxl'" in line and "minilm-l6" in line
    line = one_line_error([*base, "--tokens", str(text_run["val"]), "--text-encoder", "minilm-l6"], capsys)
    assert "has no captions" in line
    missing = str(tmp_path / "none.txt")
    line = one_line_error(["sample", str(text_run["ar"]), "--prompts", missing, "--out", "x.png"], capsys)
    assert "--prompts" in line


@pytest.mark.parametrize(
    ("name", "stage", "encoder", "text_len"),
    [
        ("t2i-mnist", "ar", "minilm-l6", 16),
        ("t2i-nar-mnist", "nar", "minilm-l6", 16),
        ("t2i-coco", "ar", "t5", 120),
    ],
)
def test_text_configs_load_as_their_stage(name, stage, encoder, text_len):
    from semtok.config import load_config
    from semtok.training.registry import config_class

    model = load_config(config_class(stage), name, []).model
    assert (model.text_encoder, model.text_len, model.class_dropout) == (encoder, text_len, 0.1)


def test_evaluate_a_text_run_with_prompt_scores_and_clip_score(text_run, tmp_path, capsys):
    """On captioned MNIST (attributes known): FID_T2I, prompt scores, and the CLIP score from a weights file."""
    import open_clip
    from safetensors.torch import save_file

    from semtok.evaluation.generation import evaluate_generation
    from semtok.metrics.clip_score import ClipScorer
    from test_clip_score import TINY

    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
    }
    (tmp_path / f"{TINY}.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / f"{TINY}.json")
    weights = tmp_path / "clip.safetensors"
    scorer = ClipScorer(TINY, random_init=True)
    save_file({k: v.contiguous() for k, v in scorer.model.state_dict().items()}, str(weights))
    results = evaluate_generation(
        text_run["ar"],
        "mnist5k-captioned",
        limit=20,
        progress=False,
        clip_weights=str(weights),
        clip_model=TINY,
    )
    assert results["protocol"] == "one sample per val image, prompted with its first caption"
    assert results["samples"] == 20 and results["gfid"] > 0
    scores = results["prompt_scores"]
    assert scores["measured"] == ["colour", "size"] and "digit" in scores["skipped"]  # no judge given
    assert scores["seen"]["count"] + scores["held_out"]["count"] == 20
    assert results["prompt_colour_seen"] == scores["seen"]["colour"]
    assert 0 <= results["clip_score"] <= 100 and results["measured"][-1] == "clip_score"
    assert "prompt_digit_seen" not in results and results["class_accuracy_skipped"].startswith("text model")
    # Without attributes (the folder's own captions): FID only, and the reasons for what was skipped.
    plain = evaluate_generation(text_run["nar"], split="train", limit=4, progress=False)
    assert "prompt_scores_skipped" in plain and "clip_score_skipped" in plain
    out = tmp_path / "eval.json"
    assert (
        main(["evaluate", str(text_run["ar"]), "--generation", "--data", "mnist5k", "--out", str(out)]) == 2
    )
    assert "has no captions" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["ar", "nar"])
def test_text_stage_learns_the_prompts_and_resumes_exactly(tmp_path, stage):
    """Two fixed grids, each with its own two captions: the trained model regenerates the grid its prompt names
    (greedy), and a run stopped and resumed equals the straight run bit for bit (caption choice and dropout
    included)."""
    from safetensors.torch import load_file

    from conftest import pattern_tokens
    from semtok.config import load_config
    from semtok.data.token_captions import write_token_captions
    from semtok.data.token_file import token_paths
    from semtok.generators import generate, generate_masked
    from semtok.generators.ar import ARTransformer
    from semtok.generators.masked import MaskedTransformer
    from semtok.training import train
    from semtok.training.registry import config_class

    manifest, grids = pattern_tokens(tmp_path / "tokens")
    names = [["the first pattern", "pattern number one"], ["the second pattern", "pattern number two"]]
    captions = write_token_captions(tmp_path / "tokens", [names[i % 2] for i in range(64)])
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "captions_file": captions.name}))
    assert token_paths(tmp_path / "tokens")[2] == manifest

    def run(out, steps, **kwargs):
        overrides = [*TINY, f"train.steps={steps}", f"data.tokens={manifest}", f"data.val_tokens={manifest}"]
        overrides += ["train.lr=3e-3", "model.text_encoder=minilm-l6", "train.batch_size=8"]
        if stage == "nar":
            overrides.append("masking.label_smoothing=0.0")
        config = load_config(config_class(stage), f"{stage}-mnist", overrides)
        return train(stage, config, out, progress=False, **kwargs)

    run(tmp_path / "straight", 6)
    assert run(tmp_path / "split", 6, stop_at=3)["stopped_at_step"] == 3
    run(tmp_path / "split", 6, resume=True)
    a = load_file(str(tmp_path / "straight" / stage / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / stage / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)

    run(tmp_path / "learned", 120 if stage == "ar" else 300)
    model_class = ARTransformer if stage == "ar" else MaskedTransformer
    model = model_class.from_pretrained(tmp_path / "learned" / stage)
    condition = CaptionCondition(manifest, "minilm-l6", "", 8, progress=False)
    text = condition.condition(torch.tensor([0, 1, 1, 0]), torch.device("cpu"), pick=False)["text"]
    sampling = SamplingConfig(temperature=0.0, cfg_scale=1.0)
    sample = generate if stage == "ar" else generate_masked
    assert torch.equal(sample(model, None, sampling, seed=0, text=text), grids[torch.tensor([0, 1, 1, 0])])


def test_python_api_samples_and_refuses(text_run):
    import semtok

    images = semtok.sample(text_run["ar"], prompts=["a red square", ""], cfg_scale=2.0)
    assert images.shape == (2, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    with pytest.raises(semtok.SemtokError, match="prompts"):
        semtok.sample(text_run["ar"], [0, 1])
    with pytest.raises(semtok.SemtokError, match="prompts"):
        semtok.sample(text_run["ar"], prompts="a red square")
