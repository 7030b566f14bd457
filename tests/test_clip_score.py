"""CLIP score with random open_clip weights (no pretrained weights on these machines): ViT-B-16 once, else a tiny
architecture registered with open_clip for the test (seconds on 2 cores)."""

import json

import pytest
import torch
import torch.nn.functional as F

from semtok.errors import SemtokError
from semtok.metrics.clip_score import ClipScorer

PROMPTS = ["a small red 7", "the digit three in blue, large", "a cyan number 0, small"]
TINY = "semtok-test-tiny-clip"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
MEAN = torch.tensor(OPENAI_MEAN)[:, None, None]
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import open_clip

    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }
    path = tmp_path_factory.mktemp("open_clip") / f"{TINY}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return ClipScorer(TINY, random_init=True, seed=0)


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def by_hand(scorer, images, prompts, size):
    """100 * max(cos, 0) from open_clip's encode_image / encode_text on the uint8-quantised, bicubic-resized,
    CLIP-normalised pixels."""
    import open_clip

    pixels = torch.floor((images.double() + 1) * 127.5 + 0.5).clamp(0, 255).float() / 255
    pixels = F.interpolate(pixels, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)
    with torch.no_grad():
        image = scorer.model.encode_image((pixels - MEAN) / STD)
        text = scorer.model.encode_text(open_clip.get_tokenizer(scorer.model_name)(prompts))
    return 100 * F.cosine_similarity(image, text, dim=-1).clamp_min(0)


@pytest.mark.slow
def test_vit_b16_score_is_the_formula(images):
    scorer = ClipScorer("ViT-B-16", random_init=True)
    assert scorer.input_size == 224 and scorer.mean == OPENAI_MEAN
    scores = scorer.score(images[:2], PROMPTS[:2])
    assert scores.shape == (2,) and scores.dtype == torch.float32
    assert ((scores >= 0) & (scores <= 100)).all()
    torch.testing.assert_close(scores, by_hand(scorer, images[:2], PROMPTS[:2], 224), atol=1e-3, rtol=1e-4)


def test_tiny_score_formula_batches_and_determinism(tiny, images):
    scores = tiny.score(images, PROMPTS, batch_size=2)
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 100)).all()
    torch.testing.assert_close(scores, by_hand(tiny, images, PROMPTS, 64), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(tiny.score(images, PROMPTS, batch_size=3), scores, atol=1e-4, rtol=0)
    assert torch.equal(tiny.score(images, PROMPTS, batch_size=2), scores)
    same_seed = ClipScorer(TINY, random_init=True, seed=0)
    assert torch.equal(same_seed.score(images, PROMPTS, batch_size=2), scores)
    assert tiny.score(images[:0], []).shape == (0,)
    # negative cosines count as 0: pair every image with every prompt until some pair points away
    many = images.repeat_interleave(8, dim=0)
    prompts = [f"{p} {k}" for p in PROMPTS for k in range(8)]
    image, text = tiny.embeddings(many, prompts)
    cosine = (image * text).sum(dim=-1)
    assert (cosine < 0).any() and (cosine > 0).any()
    torch.testing.assert_close(tiny.score(many, prompts), 100 * cosine.clamp_min(0), atol=1e-4, rtol=0)


def test_weights_file_loads_and_bad_files_fail(tiny, images, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, str(path))
    other = ClipScorer(TINY, random_init=True, seed=1)
    assert not torch.allclose(other.score(images, PROMPTS), tiny.score(images, PROMPTS))
    for weights in (path, tmp_path / "clip.pt"):
        if weights.suffix == ".pt":
            torch.save({"state_dict": other.model.state_dict()}, weights)  # torch file, wrapped
        loaded = ClipScorer(TINY, weights=weights)
        source = tiny if weights == path else other
        assert loaded.weights_source == str(weights)
        assert torch.equal(loaded.score(images, PROMPTS), source.score(images, PROMPTS))

    with pytest.raises(SemtokError, match="missing.pt' does not exist"):
        ClipScorer(TINY, weights=tmp_path / "missing.pt")
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, wrong)
    with pytest.raises(SemtokError, match=f"wrong.pt' does not fit open_clip {TINY} \\(missing"):
        ClipScorer(TINY, weights=wrong)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_text("not a weights file")
    with pytest.raises(SemtokError, match="could not read weights file .*garbage.safetensors"):
        ClipScorer(TINY, weights=garbage)


def test_bad_input(tiny, images):
    with pytest.raises(SemtokError, match="3 images but 2 prompts"):
        tiny.score(images, PROMPTS[:2])
    quantised = torch.floor((images.double() + 1) * 127.5 + 0.5).to(torch.uint8)
    assert torch.equal(
        tiny.score(quantised, PROMPTS), tiny.score(images, PROMPTS)
    )  # uint8 = saved float images
    with pytest.raises(SemtokError, match="float in"):
        tiny.score((images * 100).to(torch.int32), PROMPTS)
    with pytest.raises(SemtokError, match=r"\[B, 3, H, W\]"):
        tiny.score(images[:, :1], PROMPTS)
    with pytest.raises(SemtokError, match="batch_size"):
        tiny.score(images, PROMPTS, batch_size=0)
    with pytest.raises(SemtokError, match="list of strings"):
        tiny.score(images[:1], "a red 7")
    with pytest.raises(SemtokError, match="no model 'ViT-nope'"):
        ClipScorer("ViT-nope", random_init=True)
    with pytest.raises(SemtokError, match="not both"):
        ClipScorer(weights="x.pt", random_init=True)


def test_download_path_asks_for_quick_gelu_and_reports_failure(monkeypatch):
    import open_clip

    asked = []

    def offline(model_name, pretrained=None, **kwargs):
        asked.append((model_name, pretrained, kwargs.get("force_quick_gelu")))
        raise RuntimeError("Failed to download weights\nsecond line")

    monkeypatch.setattr(open_clip, "create_model", offline)
    with pytest.raises(
        SemtokError, match=r"could not get open_clip ViT-B-16 weights 'openai' \(RuntimeError: Failed"
    ):
        ClipScorer("ViT-B-16")
    assert asked == [("ViT-B-16", "openai", True)]  # OpenAI's weights were trained with QuickGELU
