"""Frozen text encoders: the offline MiniLM (real weights), a T5 folder in the hub layout and CLIP's text tower
(random weights), shapes, masks, truncation and errors."""

import pytest
import torch

from semtok.errors import SemtokError
from semtok.text import TEXT_ENCODERS, build_text_encoder

PROMPTS = ["a small red 7", "the digit seven in green, large", "a large blue 3"]


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("minilm-l6")


def mean_pooled(out):
    mask = out.mask_BL[..., None].float()
    return torch.nn.functional.normalize((out.embeddings_BLC * mask).sum(1) / mask.sum(1), dim=-1)


def test_minilm_offline_shapes_masks_and_meaning(minilm):
    out = minilm(PROMPTS)
    assert minilm.dim == 384 and minilm.max_length == 256
    assert out.embeddings_BLC.dtype == torch.float32 and out.mask_BL.dtype == torch.bool
    assert out.embeddings_BLC.shape[:2] == out.mask_BL.shape and out.embeddings_BLC.shape[0] == 3
    lengths = out.mask_BL.sum(1)
    assert int(lengths.max()) == out.mask_BL.shape[1] and int(lengths[0]) < int(lengths[1])
    alone = minilm(PROMPTS[:1])  # padding does not change a prompt's own tokens
    assert torch.allclose(alone.embeddings_BLC[0], out.embeddings_BLC[0, : alone.mask_BL.shape[1]], atol=1e-4)
    pooled = mean_pooled(minilm(["a red seven", "a red 7", "a photograph of a mountain lake"]))
    assert float(pooled[0] @ pooled[1]) > float(pooled[0] @ pooled[2]) + 0.2  # real weights: meaning
    assert not any(p.requires_grad for p in minilm.parameters()) and not minilm.training


def test_long_prompt_is_truncated_with_a_warning(minilm):
    long_prompt = " ".join(["seven"] * 400)
    with pytest.warns(UserWarning, match="truncated to the minilm-l6 limit of 256"):
        out = minilm([long_prompt, "a 7"])
    assert out.mask_BL.shape[1] == 256


def test_clip_text_tower_random_weights():
    encoder = build_text_encoder("clip-text-b16", random_init=True)
    out = encoder(PROMPTS)
    assert encoder.dim == 512 and encoder.max_length == 77
    assert out.embeddings_BLC.shape == (3, out.mask_BL.shape[1], 512)
    assert out.mask_BL.sum(1).tolist() == [n + 2 for n in (len(encoder.tokenizer.encode(p)) for p in PROMPTS)]


def t5_folder(path):
    """A tiny random T5 encoder folder in the hub layout (config, safetensors, tokenizer.json)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    words = ["<pad>", "</s>", "<unk>", "a", "small", "red", "7", "large", "blue", "3", "the", "digit"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(words), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    T5EncoderModel(config).save_pretrained(path, safe_serialization=True)
    return path


def test_t5_from_a_local_hub_folder(tmp_path):
    encoder = build_text_encoder("t5", weights=t5_folder(tmp_path / "t5"))
    out = encoder(["a small red 7", "a large blue 3 the digit"])
    assert encoder.dim == 32 and encoder.max_length == 120
    assert out.embeddings_BLC.shape == (2, 6, 32) and out.mask_BL.sum(1).tolist() == [4, 6]


def test_bad_text_encoder_input(tmp_path):
    with pytest.raises(SemtokError, match="unknown text encoder 'bert'"):
        build_text_encoder("bert")
    with pytest.raises(SemtokError, match="expected a model folder with config.json"):
        build_text_encoder("t5", weights=str(tmp_path / "missing") + "/")
    with pytest.raises(SemtokError, match="random_init"):
        build_text_encoder("minilm-l6", random_init=True)
    assert set(TEXT_ENCODERS) == {"minilm-l6", "clip-text-b16", "t5"}
