"""The masked (MaskGIT / MAGE) proposal network: model, masking, loss, decoding schedule, guidance, seeds, learning."""

import math

import pytest
import torch
from safetensors.torch import load_file

from conftest import pattern_tokens
from semtok.config import load_config
from semtok.errors import SemtokError
from semtok.generators.masked import MaskedConfig, MaskedTransformer
from semtok.generators.masked_sampling import MASK_SCHEDULES, generate_masked, masked_counts
from semtok.generators.sampling import SamplingConfig
from semtok.losses.next_token import masked_token_loss
from semtok.training import train
from semtok.training.nar import MaskingConfig, NARRunConfig, mask_ratios, random_mask

TINY_NAR = [
    "model.depth=2",
    "model.width=32",
    "model.heads=2",
    "model.dropout=0.0",
    "train.batch_size=8",
    "train.warmup_steps=2",
    "train.checkpoint_every=5",
    "train.log_every=1",
]


def random_model(style: str = "llama", num_classes: int = 3, vocab: int = 20, seq_len: int = 8):
    torch.manual_seed(0)
    config = MaskedConfig(
        style=style, depth=2, width=32, heads=2, vocab_size=vocab, seq_len=seq_len, num_classes=num_classes
    )
    model = MaskedTransformer(config).eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)  # the zero-initialised head makes every logit equal
    return model


@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_forward_shapes_and_bidirectional(style):
    model = random_model(style)
    ids = torch.randint(0, 21, (3, 8))  # 20 = the mask token
    labels = torch.tensor([0, 2, 3])  # 3 = null class
    with torch.no_grad():
        logits = model(ids, labels)
        changed = ids.clone()
        changed[:, -1] = (changed[:, -1] + 1) % 20
        later_changes_earlier = model(changed, labels)[:, 0]
    assert logits.shape == (3, 8, 20) and logits.dtype == torch.float32
    assert not torch.allclose(logits[:, 0], later_changes_earlier)  # no causal mask: position 0 sees the last
    with pytest.raises(SemtokError, match="seq_len"):
        model(ids[:, :5], labels)


def test_loss_counts_masked_positions_only():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 10)
    ids = torch.randint(0, 10, (2, 6))
    masked = torch.tensor(
        [[True, False, False, True, False, False], [False, False, False, False, False, True]]
    )
    expected = torch.nn.functional.cross_entropy(logits[masked], ids[masked])
    assert torch.allclose(masked_token_loss(logits, ids, masked), expected)
    scrambled = logits.clone()
    scrambled[~masked] = torch.randn_like(scrambled[~masked]) * 10  # unmasked positions do not count
    assert torch.allclose(masked_token_loss(scrambled, ids, masked), expected)
    smoothed = torch.nn.functional.cross_entropy(logits[masked], ids[masked], label_smoothing=0.1)
    assert torch.allclose(masked_token_loss(logits, ids, masked, 0.1), smoothed)


@pytest.mark.parametrize("schedule", ["maskgit", "mage"])
def test_training_masks(schedule):
    torch.manual_seed(0)
    masking = MaskingConfig(schedule=schedule)
    ratios = mask_ratios(4000, masking, torch.device("cpu"))
    assert float(ratios.min()) > 0 and float(ratios.max()) <= 1
    if schedule == "mage":
        assert float(ratios.min()) >= 0.5
        assert 0.6 < float(ratios.mean()) < 0.75  # mean of N(0.55, 0.25) truncated to [0.5, 1]: 0.68
    else:
        assert abs(float(ratios.mean()) - 2 / math.pi) < 0.02  # E[cos(pi/2 u)] = 2 / pi
    ids = torch.zeros(5, 10, dtype=torch.long)
    masked = random_mask(ids, torch.tensor([0.0, 0.05, 0.5, 0.91, 1.0]))
    assert masked.sum(dim=1).tolist() == [1, 1, 5, 10, 10]  # ceil(r * N), at least one


@pytest.mark.parametrize("schedule", list(MASK_SCHEDULES))
def test_schedule_reaches_zero_exactly_at_the_last_step(schedule):
    for num_tokens in (1, 7, 64, 256):
        for steps in range(1, 40):
            counts = masked_counts(num_tokens, steps, schedule)
            assert len(counts) == steps and counts[-1] == 0
            assert all(c > 0 for c in counts[:-1]) or num_tokens < steps
            previous = num_tokens
            for count in counts:
                assert count < previous or previous == 0  # every step reveals at least one token
                previous = count


def test_bad_decoding_settings():
    with pytest.raises(SemtokError, match="steps"):
        SamplingConfig(steps=0)
    with pytest.raises(SemtokError, match="schedule 'nope'"):
        SamplingConfig(schedule="nope")
    with pytest.raises(SemtokError, match="steps"):
        masked_counts(8, 0)
    with pytest.raises(SemtokError, match="class"):
        generate_masked(random_model(), torch.tensor([7]))
    with pytest.raises(SemtokError, match="masking.schedule"):
        MaskingConfig(schedule="uniform")


@pytest.mark.parametrize("cfg_ramp", [False, True])
def test_decoding_is_seeded_and_leaves_no_mask(cfg_ramp):
    model = random_model()
    labels = torch.tensor([0, 1, 2, 1])
    sampling = SamplingConfig(top_k=5, top_p=0.9, cfg_scale=2.0, steps=5, cfg_ramp=cfg_ramp)
    record: list[torch.Tensor] = []
    ids = generate_masked(model, labels, sampling, seed=3, record=record)
    assert ids.shape == (4, 8) and ids.dtype == torch.long
    assert int(ids.min()) >= 0 and int(ids.max()) < 20  # no mask token (id 20) left
    assert torch.equal(ids, generate_masked(model, labels, sampling, seed=3))
    assert not torch.equal(ids, generate_masked(model, labels, sampling, seed=4))
    assert len(record) == 5 and torch.equal(record[-1], ids)
    masked_after = [int((grid == -1).sum()) for grid in record]
    assert masked_after == [4 * c for c in masked_counts(8, 5)]
    for earlier, later in zip(record, record[1:], strict=False):  # decided tokens stay decided
        known = earlier != -1
        assert torch.equal(earlier[known], later[known])


def test_guidance_scale_zero_is_unconditional():
    model = random_model()
    plain = {"top_k": 0, "top_p": 1.0, "steps": 4}
    labels = torch.tensor([0, 1, 2])
    guided = generate_masked(model, labels, SamplingConfig(**plain, cfg_scale=0.0), seed=1)
    uncond = generate_masked(model, torch.full((3,), 3), SamplingConfig(**plain, cfg_scale=1.0), seed=1)
    conditional = generate_masked(model, labels, SamplingConfig(**plain, cfg_scale=1.0), seed=1)
    assert torch.equal(guided, uncond)
    assert not torch.equal(conditional, uncond)


@pytest.mark.slow
def test_train_nar_learns_patterns_resumes_exactly_and_saves(tmp_path):
    manifest, grids = pattern_tokens(tmp_path / "tokens")

    def run(out, steps, **kwargs):
        overrides = [
            *TINY_NAR,
            f"train.steps={steps}",
            f"data.tokens={manifest}",
            f"data.val_tokens={manifest}",
        ]
        overrides += ["train.lr=3e-3", "masking.label_smoothing=0.0"]
        return train("nar", load_config(NARRunConfig, "nar-mnist", overrides), out, progress=False, **kwargs)

    straight = run(tmp_path / "straight", 10)
    assert run(tmp_path / "split", 10, stop_at=5)["stopped_at_step"] == 5
    run(tmp_path / "split", 10, resume=True)
    a = load_file(str(tmp_path / "straight" / "nar" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "nar" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)

    learned = run(tmp_path / "learned", 150)
    assert learned["val_masked_nll"] < 0.3 < straight["val_masked_nll"]
    model = MaskedTransformer.from_pretrained(tmp_path / "learned" / "nar")
    assert model.config.vocab_size == 16 and model.config.grid == (2, 4) and model.config.num_classes == 2
    assert model.info["class_names"] == ["a", "b"]
    labels = torch.tensor([0, 1, 1, 0])
    for steps in (1, 4, 8):
        sampling = SamplingConfig(temperature=0.0, cfg_scale=1.0, steps=steps)
        assert torch.equal(generate_masked(model, labels, sampling), grids[labels])


def test_train_nar_errors(tmp_path):
    with pytest.raises(SemtokError, match="token file"):
        train("nar", load_config(NARRunConfig, "nar-mnist", TINY_NAR), tmp_path / "x", progress=False)
    manifest, _ = pattern_tokens(tmp_path / "tokens")
    bad = [*TINY_NAR, f"data.tokens={manifest}", "model.vocab_size=99"]
    with pytest.raises(SemtokError, match="model.vocab_size"):
        train("nar", load_config(NARRunConfig, "nar-mnist", bad), tmp_path / "y", progress=False)
