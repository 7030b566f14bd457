"""Text conditioning of both proposal networks: the projected prefix, its null / pad vectors, KV cache, guidance."""

import pytest
import torch

from semtok.errors import SemtokError
from semtok.generators import (
    ARConfig,
    ARTransformer,
    MaskedConfig,
    MaskedTransformer,
    SamplingConfig,
    generate,
    generate_masked,
)
from semtok.generators.conditioning import TextPrefix
from semtok.generators.cpu_inference import pack_for_cpu

SHAPE = {"depth": 2, "width": 32, "heads": 2, "vocab_size": 20, "seq_len": 8, "text_dim": 12, "text_len": 5}


def text(batch: int = 3, length: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, length, 12, generator=generator)
    mask = torch.arange(length)[None] < torch.randint(1, length + 1, (batch, 1), generator=generator)
    return embeddings, mask


def model(family: str, style: str = "llama"):
    torch.manual_seed(0)
    cls, config = (ARTransformer, ARConfig) if family == "ar" else (MaskedTransformer, MaskedConfig)
    net = cls(config(style=style, **SHAPE)).eval()
    torch.nn.init.normal_(net.head.weight, std=0.5)
    if net.pos_embed is not None:
        torch.nn.init.normal_(net.pos_embed, std=0.5)
    return net


def test_prefix_pads_cuts_and_drops():
    prefix = TextPrefix(text_dim=12, width=16, text_len=5)
    embeddings, mask = text(3, 4)
    mask[0] = torch.tensor([True, True, False, False])
    out = prefix(embeddings, mask, torch.tensor([False, True, False]))
    assert out.shape == (3, 5, 16)
    assert torch.allclose(out[0, :2], prefix.proj(embeddings[0, :2]))
    assert torch.equal(out[0, 2], prefix.pad) and torch.equal(out[0, 4], prefix.pad)  # masked and padded
    assert torch.equal(out[1], prefix.null)  # a dropped caption is the null prefix, whatever the text
    long = prefix(*text(2, 9))
    assert long.shape == (2, 5, 16)  # cut to text_len
    with pytest.raises(SemtokError, match="text_dim|12"):
        prefix(torch.zeros(1, 3, 7), torch.ones(1, 3, dtype=torch.bool))


@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_ar_text_prefix_kv_cache_and_sampling(style):
    net = model("ar", style)
    condition = text()
    ids = torch.randint(0, 20, (3, 8))
    with torch.no_grad():
        full = net(ids, text=condition)
        cache = net.new_cache(3)
        inputs, stepped = net.prefix(text=condition), []
        for t in range(8):
            stepped.append(net.step(inputs, cache, 0 if t == 0 else 5 + t - 1))
            inputs = net.token_embed(ids[:, t])[:, None]
    assert full.shape == (3, 8, 20)
    assert torch.allclose(torch.stack(stepped, dim=1), full, atol=1e-4)
    settings = SamplingConfig(top_k=5, top_p=0.9, cfg_scale=2.0)
    cached = generate(net, None, settings, seed=2, text=condition)
    uncached = generate(
        net, None, SamplingConfig(top_k=5, top_p=0.9, cfg_scale=2.0, use_cache=False), 2, text=condition
    )
    assert torch.equal(cached, uncached) and torch.equal(
        cached, generate(pack_for_cpu(net), None, settings, 2, text=condition)
    )


@pytest.mark.parametrize("family", ["ar", "nar"])
def test_guidance_scale_zero_ignores_the_prompt(family):
    net = model(family)
    sample = generate if family == "ar" else generate_masked
    plain = {"top_k": 0, "top_p": 1.0} | ({"steps": 4} if family == "nar" else {})
    one, other = text(3, 4, seed=0), text(3, 6, seed=1)
    unconditional = sample(net, None, SamplingConfig(**plain, cfg_scale=0.0), seed=1, text=one)
    assert torch.equal(
        unconditional, sample(net, None, SamplingConfig(**plain, cfg_scale=0.0), seed=1, text=other)
    )
    ids = torch.randint(0, 20, (3, 8))
    with torch.no_grad():  # the prompt matters without guidance; the null prefix does not depend on it
        conditional = net(ids, text=one)
        dropped = torch.ones(3, dtype=torch.bool)
        null_one, null_other = net(ids, text=one, dropped_B=dropped), net(ids, text=other, dropped_B=dropped)
    assert not torch.allclose(conditional, null_one) and torch.equal(null_one, null_other)


def test_wrong_condition_is_one_line():
    with pytest.raises(SemtokError, match="text-conditional"):
        generate(model("ar"), torch.tensor([0, 1]))
    with pytest.raises(SemtokError, match="class-conditional"):
        generate(
            ARTransformer(ARConfig(**{k: v for k, v in SHAPE.items() if not k.startswith("text")})),
            None,
            text=text(),
        )
    with pytest.raises(SemtokError, match="text_dim"):
        ARConfig(text_dim=12)


def test_text_model_learns_prompt_dependent_grids():
    torch.manual_seed(0)
    net = MaskedTransformer(MaskedConfig(**SHAPE))
    prompts = text(2, 4, seed=3)
    grids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1]])
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(150):
        rows = torch.randint(0, 2, (16,))
        masked = torch.rand(16, 8) < torch.rand(16, 1).clamp_min(0.2)
        inputs = grids[rows].masked_fill(masked, net.config.mask_id)
        logits = net(inputs, text=(prompts[0][rows], prompts[1][rows]))
        loss = torch.nn.functional.cross_entropy(logits[masked], grids[rows][masked])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    greedy = generate_masked(net, None, SamplingConfig(temperature=0.0, cfg_scale=1.0, steps=4), text=prompts)
    assert torch.equal(greedy, grids)
