"""The AR proposal network: KV cache, sampling filters, guidance, training (resume, learning), sample files."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import pattern_tokens
from semtok.cli import main
from semtok.config import load_config
from semtok.data.token_file import read_token_file
from semtok.errors import SemtokError
from semtok.generators import ARConfig, ARTransformer, SamplingConfig, generate, sample_logits
from semtok.generators.sampler import Sampler
from semtok.pipelines.tokenize import tokenize_dataset
from semtok.tokenizers import ConvNetConfig, FSQConfig, FSQTokenizer
from semtok.training import train
from semtok.training.ar import ARRunConfig
from semtok.visual.provenance import read_provenance, write_samples

TINY_AR = [
    "model.depth=2",
    "model.width=32",
    "model.heads=2",
    "model.dropout=0.0",
    "train.batch_size=8",
    "train.warmup_steps=2",
    "train.checkpoint_every=5",
    "train.log_every=1",
]


def random_model(style: str, num_classes: int = 3, vocab: int = 50, seq_len: int = 12) -> ARTransformer:
    torch.manual_seed(0)
    config = ARConfig(
        style=style, depth=2, width=32, heads=2, vocab_size=vocab, seq_len=seq_len, num_classes=num_classes
    )
    model = ARTransformer(config).eval()
    torch.nn.init.normal_(
        model.head.weight, std=0.5
    )  # the zero-initialised head would make every logit equal
    if model.pos_embed is not None:
        torch.nn.init.normal_(model.pos_embed, std=0.5)
    return model


@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_kv_cache_matches_full_forward(style):
    model = random_model(style)
    ids = torch.randint(0, 50, (3, 12))
    labels = torch.tensor([0, 2, 3])  # 3 = null class
    with torch.no_grad():
        full = model(ids, labels)
        cache = model.new_cache(3)
        inputs = model.class_embed(labels)[:, None]
        stepped = []
        for t in range(12):
            stepped.append(model.step(inputs, cache, t))
            inputs = model.token_embed(ids[:, t])[:, None]
    assert full.shape == (3, 12, 50)
    assert torch.allclose(torch.stack(stepped, dim=1), full, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("style", ["llama", "gpt2"])
@pytest.mark.parametrize("cfg", [1.0, 2.0])
def test_generate_cached_equals_uncached_and_is_seeded(style, cfg):
    model = random_model(style)
    labels = torch.tensor([0, 1, 2, 1])
    settings = {"top_k": 10, "top_p": 0.9, "cfg_scale": cfg}
    cached = generate(model, labels, SamplingConfig(**settings), seed=5)
    uncached = generate(model, labels, SamplingConfig(**settings, use_cache=False), seed=5)
    assert cached.shape == (4, 12) and cached.dtype == torch.long
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, generate(model, labels, SamplingConfig(**settings), seed=5))
    assert not torch.equal(cached, generate(model, labels, SamplingConfig(**settings), seed=6))


def test_guidance_scale_zero_is_unconditional():
    model = random_model("llama")
    labels = torch.tensor([0, 1, 2])
    guided = generate(model, labels, SamplingConfig(top_k=0, top_p=1.0, cfg_scale=0.0), seed=1)
    uncond = generate(model, torch.full((3,), 3), SamplingConfig(top_k=0, top_p=1.0, cfg_scale=1.0), seed=1)
    conditional = generate(model, labels, SamplingConfig(top_k=0, top_p=1.0, cfg_scale=1.0), seed=1)
    assert torch.equal(guided, uncond)
    assert not torch.equal(conditional, uncond)


def test_sample_logits_filters():
    generator = torch.Generator().manual_seed(0)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    assert torch.equal(sample_logits(logits, temperature=0.0), torch.zeros(4000, dtype=torch.long))
    assert torch.equal(
        sample_logits(logits, top_k=1, generator=generator), torch.zeros(4000, dtype=torch.long)
    )
    top2 = sample_logits(logits, top_k=2, generator=generator)
    assert set(top2.tolist()) == {0, 1}
    assert abs((top2 == 0).float().mean().item() - 0.5 / 0.8) < 0.03  # renormalised over the kept tokens
    nucleus = sample_logits(logits, top_p=0.7, generator=generator)  # 0.5 < 0.7 <= 0.8: tokens 0 and 1
    assert set(nucleus.tolist()) == {0, 1}
    assert set(sample_logits(logits, top_p=0.9, generator=generator).tolist()) == {0, 1, 2}
    free = sample_logits(logits, generator=generator)
    assert abs((free == 3).float().mean().item() - 0.05) < 0.015
    hot = sample_logits(logits, temperature=100.0, generator=generator)
    assert abs((hot == 3).float().mean().item() - 0.25) < 0.04


def test_bad_sampling_settings_and_labels():
    with pytest.raises(SemtokError, match="top_p"):
        SamplingConfig(top_p=0.0)
    with pytest.raises(SemtokError, match="class"):
        generate(random_model("llama"), torch.tensor([7]))


@pytest.mark.slow
def test_train_ar_learns_resumes_exactly_and_saves(tmp_path):
    manifest, sequences = pattern_tokens(tmp_path / "tokens")

    def run(out, steps, **kwargs):
        overrides = [
            *TINY_AR,
            f"train.steps={steps}",
            f"data.tokens={manifest}",
            f"data.val_tokens={manifest}",
        ]
        overrides.append("train.lr=3e-3")
        return train("ar", load_config(ARRunConfig, "ar-mnist", overrides), out, progress=False, **kwargs)

    straight = run(tmp_path / "straight", 10)
    assert run(tmp_path / "split", 10, stop_at=5)["stopped_at_step"] == 5
    run(tmp_path / "split", 10, resume=True)
    a = load_file(str(tmp_path / "straight" / "ar" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "ar" / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    assert straight["val_nll"] > 0 and (tmp_path / "straight" / "summary.json").exists()

    learned = run(tmp_path / "learned", 120)
    assert learned["val_nll"] < 0.3 < straight["val_nll"]
    model = ARTransformer.from_pretrained(tmp_path / "learned" / "ar")
    assert model.config.vocab_size == 16 and model.config.grid == (2, 4) and model.config.num_classes == 2
    assert model.info["class_names"] == ["a", "b"]
    greedy = generate(model, torch.tensor([0, 1]), SamplingConfig(temperature=0.0, cfg_scale=1.0))
    assert torch.equal(greedy, sequences)


def test_train_ar_errors(tmp_path):
    with pytest.raises(SemtokError, match="token file"):
        train("ar", load_config(ARRunConfig, "ar-mnist", TINY_AR), tmp_path / "x", progress=False)
    manifest, _ = pattern_tokens(tmp_path / "tokens")
    bad = [*TINY_AR, f"data.tokens={manifest}", "model.vocab_size=99"]
    with pytest.raises(SemtokError, match="model.vocab_size"):
        train("ar", load_config(ARRunConfig, "ar-mnist", bad), tmp_path / "y", progress=False)


@pytest.fixture
def fsq_tokenizer(tmp_path):
    torch.manual_seed(0)
    config = FSQConfig(
        image_size=32,
        levels=(4, 3),
        conv=ConvNetConfig(
            channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=16, attn_resolutions=()
        ),
    )
    return FSQTokenizer(config).eval().save_pretrained(tmp_path / "fsq")


@pytest.mark.slow
def test_tokenize_views_then_sample_with_provenance(fsq_tokenizer, image_folder, tmp_path, capsys):
    one = tokenize_dataset(fsq_tokenizer, str(image_folder), "train", tmp_path / "one", progress=False)
    two = tokenize_dataset(
        fsq_tokenizer, str(image_folder), "train", tmp_path / "two", views=2, augment="flip", progress=False
    )
    ids1, labels1, _ = read_token_file(one)
    ids2, labels2, manifest = read_token_file(two)
    assert (
        ids2.shape == (40, 8, 8) and manifest["data"]["views"] == 2 and manifest["data"]["augment"] == "flip"
    )
    assert np.array_equal(labels2, np.concatenate([labels1, labels1]))
    assert not np.array_equal(ids2[:20], ids2[20:])  # flipped views differ
    with pytest.raises(SemtokError, match="views"):
        tokenize_dataset(fsq_tokenizer, str(image_folder), "train", tmp_path / "x", views=2, progress=False)

    overrides = [*TINY_AR, "train.steps=3", f"data.tokens={two}"]
    train("ar", load_config(ARRunConfig, "ar-mnist", overrides), tmp_path / "ar", progress=False)
    generator = Sampler(tmp_path / "ar")
    settings = SamplingConfig(top_k=5)
    grid = write_samples(
        generator, torch.tensor([0, 1, 1]), tmp_path / "grid.png", settings, 3, 3, 2, tmp_path / "each"
    )
    provenance = read_provenance(grid)
    assert provenance["classes"] == [0, 1, 1] and provenance["seed"] == 3
    assert provenance["tokenizer"] == str(fsq_tokenizer.resolve())
    assert provenance["sampling"]["top_k"] == 5 and len(provenance["weights_sha256"]) == 16
    assert json.loads(grid.with_suffix(".json").read_text()) == provenance
    single = read_provenance(tmp_path / "each" / "00002_class1.png")
    assert single["classes"] == [1] and single["index"] == 2
    images, ids = generator.sample(torch.tensor([0, 1, 1]), settings, seed=3, batch_size=2)
    assert (
        images.shape == (3, 3, 32, 32) and images.min() >= -1 and images.max() <= 1 and ids.shape == (3, 8, 8)
    )

    code = main(
        [
            "sample",
            str(tmp_path / "ar"),
            "--all-classes",
            "--n",
            "2",
            "--out",
            str(tmp_path / "all.png"),
            "--no-progress",
        ]
    )
    assert code == 0 and read_provenance(tmp_path / "all.png")["classes"] == [0, 0, 1, 1]
    assert main(["sample", str(tmp_path / "ar"), "--class", "5", "--out", str(tmp_path / "c.png")]) == 2
    assert "classes 0..1" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "nothing"), "--out", str(tmp_path / "c.png")]) == 2
    assert main(["train", "ar", "--out", str(tmp_path / "z"), "--no-progress"]) == 2
    assert "--tokens" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_generation_reports_metrics_and_skips(fsq_tokenizer, image_folder, tmp_path, capsys):
    from semtok.evaluation.generation import evaluate_generation
    from semtok.evaluation.judge import Judge, JudgeConfig

    manifest = tokenize_dataset(
        fsq_tokenizer, str(image_folder), "train", tmp_path / "tokens", progress=False
    )
    train(
        "ar",
        load_config(ARRunConfig, "ar-mnist", [*TINY_AR, "train.steps=2", f"data.tokens={manifest}"]),
        tmp_path / "ar",
        progress=False,
    )
    torch.manual_seed(0)
    Judge(JudgeConfig(num_classes=2, width=8, stages=2)).save_pretrained(tmp_path / "judge")
    settings = SamplingConfig(top_k=8, cfg_scale=1.5)
    results = evaluate_generation(
        tmp_path / "ar",
        sampling=settings,
        judge=tmp_path / "judge",
        progress=False,
        samples_out=tmp_path / "s.png",
    )
    assert results["samples"] == 6 and results["protocol"] == "one sample per val label"
    assert results["gfid"] > 0 and 0 <= results["precision"] <= 1 and 0 <= results["recall"] <= 1
    assert "inception_score" not in results and "weights" in results["inception_score_skipped"]
    assert 0 <= results["class_accuracy"] <= 1 and results["sampling"]["cfg_scale"] == 1.5
    assert "TF-Inception" in results["fid_extractor"] or "inception" in results["fid_extractor"]
    assert read_provenance(tmp_path / "s.png")["classes"] == [0, 0, 0, 1, 1, 1]
    no_judge = evaluate_generation(tmp_path / "ar", sampling=settings, progress=False)
    assert "judge" in no_judge["class_accuracy_skipped"] and no_judge["gfid"] == results["gfid"]
    code = main(
        [
            "evaluate",
            str(tmp_path / "ar"),
            "--generation",
            "--judge",
            str(tmp_path / "nojudge"),
            "--no-progress",
        ]
    )
    assert code == 2 and "judge" in capsys.readouterr().err


@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_packed_cpu_model_matches_and_samples_the_same(style):
    from semtok.generators.cpu_inference import PackedLinear, onednn_linear_available, pack_for_cpu

    model = random_model(style)
    packed = pack_for_cpu(model, batch_hint=4)
    if not onednn_linear_available():
        assert packed is model
        return
    assert isinstance(packed.head, PackedLinear) and isinstance(model.head, torch.nn.Linear)
    ids, labels = torch.randint(0, 50, (4, 12)), torch.tensor([0, 1, 2, 3])
    with torch.inference_mode():
        assert torch.allclose(packed(ids, labels), model(ids, labels), atol=1e-4)
    settings = SamplingConfig(top_k=10, cfg_scale=1.5)
    assert torch.equal(
        generate(packed, labels[:3], settings, seed=2), generate(model, labels[:3], settings, seed=2)
    )
