"""Prompt-following scores on captioned MNIST: the bookkeeping (real val images, a random-weight judge)."""

import pytest
import torch

from semtok.data.captioned_mnist import COLOUR_NAMES, Attributes, CaptionedMNIST
from semtok.errors import SemtokError
from semtok.evaluation.judge import Judge, JudgeConfig
from semtok.evaluation.prompt_scores import format_prompt_scores, prompt_scores, wilson_lower


@pytest.fixture(scope="module")
def val():
    dataset = CaptionedMNIST("val", 32)
    return dataset, dataset.tensors()[0], [dataset.held_out(i) for i in range(len(dataset))]


def test_rendered_images_score_colour_and_size_without_a_judge(val):
    dataset, images, held_out = val
    result = prompt_scores(images, dataset.attributes, held_out)
    assert result["measured"] == ["colour", "size"] and "no judge" in result["skipped"]["digit"]
    assert result["chance"] == pytest.approx({"colour": 1 / 6, "size": 1 / 2, "all_correct": 1 / 12})
    held = sum(held_out)
    assert 0 < held < 500
    assert [result[g]["count"] for g in ("all", "seen", "held_out")] == [500, 500 - held, held]
    for group in ("all", "seen", "held_out"):
        scores = result[group]
        assert scores["digit"] is None and scores["colour"] == scores["size"] == scores["all_correct"] == 1.0
        assert all(scores["above_chance"].values())
    assert prompt_scores(images, dataset.attributes) == result  # default held-out flags: HELD_OUT membership
    table = format_prompt_scores(result)
    assert f"held-out (n={held})" in table and "| colour | 0.167 | 1.000* (500/500) |" in table
    assert "digit: skipped, no judge" in table and "all correct = colour and size right" in table


def test_digit_accuracy_is_the_judges_verdict(val):
    dataset, images, held_out = val
    torch.manual_seed(0)
    judge = Judge(JudgeConfig(width=8, stages=2))
    predicted = judge.classify(images).argmax(dim=1)
    right = predicted == dataset.labels
    assert 0 < int(right.sum()) < 500  # a random judge: some right, some wrong
    result = prompt_scores(images, dataset.attributes, held_out, judge=judge)
    assert result["measured"] == ["digit", "colour", "size"] and result["skipped"] == {}
    assert result["chance"]["all_correct"] == pytest.approx(1 / 120)
    flags = torch.tensor(held_out)
    for group, rows in (("all", torch.ones(500, dtype=torch.bool)), ("seen", ~flags), ("held_out", flags)):
        expected = float(right[rows].double().mean())
        assert result[group]["digit"] == pytest.approx(expected)
        assert result[group]["all_correct"] == pytest.approx(expected)  # colour and size are all right
    assert "| digit | 0.100 |" in format_prompt_scores(result)


def test_wrong_attributes_score_low(val):
    dataset, images, held_out = val
    rotated = [
        Attributes(a.digit, COLOUR_NAMES[(COLOUR_NAMES.index(a.colour) + 1) % 6], a.size)
        for a in dataset.attributes
    ]
    result = prompt_scores(images, rotated, held_out)
    assert (
        result["all"]["colour"] == 0.0
        and result["all"]["size"] == 1.0
        and result["all"]["all_correct"] == 0.0
    )
    assert not result["all"]["above_chance"]["colour"] and result["all"]["above_chance"]["size"]
    other = {"small": "large", "large": "small"}
    resized = [Attributes(a.digit, a.colour, other[a.size]) for a in dataset.attributes]
    result = prompt_scores(images[:100], resized[:100], held_out[:100])
    assert result["all"]["size"] == 0.0 and result["all"]["colour"] == 1.0 and result["all"]["count"] == 100
    half = [resized[i] if i % 2 else dataset.attributes[i] for i in range(100)]
    assert prompt_scores(images[:100], half, held_out[:100])["all"]["size"] == 0.5
    seen_only = prompt_scores(images[:4], dataset.attributes[:4], [False] * 4)
    assert seen_only["held_out"]["count"] == 0 and seen_only["held_out"]["colour"] is None
    assert "| -" in format_prompt_scores(seen_only)


def test_wilson_lower_bound():
    assert wilson_lower(0, 0) == 0.0 and wilson_lower(0, 50) == pytest.approx(0.0, abs=1e-12)
    assert 0.85 < wilson_lower(100, 100) < 1.0 and wilson_lower(50, 100) < 0.5 < wilson_lower(500, 800)


def test_bad_input(val):
    dataset, images, held_out = val
    with pytest.raises(SemtokError, match="4 images but 3 attributes"):
        prompt_scores(images[:4], dataset.attributes[:3])
    with pytest.raises(SemtokError, match="4 attributes but 3 held-out flags"):
        prompt_scores(images[:4], dataset.attributes[:4], held_out[:3])
    with pytest.raises(SemtokError, match=r"attributes\[0\]: expected a colour"):
        prompt_scores(images[:1], [Attributes(1, "purple", "small")])
    with pytest.raises(SemtokError, match="digit 10 is not in 0..9"):
        prompt_scores(images[:1], [Attributes(10, "red", "small")])
    with pytest.raises(SemtokError, match=r"expected \(digit, colour, size\)"):
        prompt_scores(images[:1], [(1, "red")])
    with pytest.raises(SemtokError, match=r"images \[B, 3, H, W\]"):
        prompt_scores(images[:1, :1], dataset.attributes[:1])
    with pytest.raises(SemtokError, match="judge knows 5 classes"):
        prompt_scores(images[:1], dataset.attributes[:1], judge=Judge(JudgeConfig(num_classes=5, width=8)))
