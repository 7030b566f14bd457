"""Prompt following on captioned MNIST (GenEval spirit): does each generated image show what its caption asks for?

Per image, three attributes are read back and compared with the caption's: the digit (a judge classifier trained
on the data, :class:`semtok.evaluation.judge.Judge`), the colour (:func:`semtok.metrics.attributes.measure_colour`)
and the size (:func:`semtok.metrics.attributes.measure_size`). Reported: the accuracy of each attribute and the
share of images with every measured attribute right, for the rows with a seen (digit, colour) pair, for the
held-out pairs (:data:`semtok.data.captioned_mnist.HELD_OUT`, compositional generalisation) and for all rows, with
the chance levels of a generator that ignores the prompt (uniform over the attribute's values).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from semtok.data.captioned_mnist import COLOURS, HELD_OUT, SIZES, Attributes
from semtok.errors import SemtokError
from semtok.metrics.attributes import measure_colour, measure_size

__all__ = ["CHANCE", "attribute_hits", "format_prompt_scores", "prompt_scores"]

NUM_DIGITS = 10
CHANCE: dict[str, float] = {"digit": 1 / NUM_DIGITS, "colour": 1 / len(COLOURS), "size": 1 / len(SIZES)}
NO_JUDGE = (
    "no judge given (train one on the captioned data: `semtok train judge --config judge-mnist "
    "--data mnist5k-captioned --set data.augment=none`)"
)
GROUPS = ("all", "seen", "held_out")


def _check(images_B3HW: torch.Tensor, attributes: list[Attributes]) -> None:
    if not isinstance(images_B3HW, torch.Tensor) or images_B3HW.dim() != 4 or images_B3HW.shape[1] != 3:
        shape = (
            tuple(images_B3HW.shape) if isinstance(images_B3HW, torch.Tensor) else type(images_B3HW).__name__
        )
        raise SemtokError(f"prompt scores: expected images [B, 3, H, W] in [-1, 1], got {shape}")
    if len(attributes) != images_B3HW.shape[0]:
        raise SemtokError(
            f"prompt scores: {images_B3HW.shape[0]} images but {len(attributes)} attributes; expected one each"
        )
    for index, item in enumerate(attributes):
        if not isinstance(item, tuple) or len(item) != 3:
            raise SemtokError(
                f"prompt scores: attributes[{index}]: expected (digit, colour, size), got {item!r}"
            )
        digit, colour, size = item
        if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit < NUM_DIGITS:
            raise SemtokError(f"prompt scores: attributes[{index}]: digit {digit!r} is not in 0..9")
        if colour not in COLOURS or size not in SIZES:
            raise SemtokError(
                f"prompt scores: attributes[{index}]: expected a colour of {list(COLOURS)} and a size of "
                f"{list(SIZES)}, got {colour!r}, {size!r}"
            )


def attribute_hits(
    images_B3HW: torch.Tensor, attributes: list[Attributes], judge: Any = None, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """Bool ``[B]`` per measured attribute (``"digit"`` only with a ``judge``, ``"colour"``, ``"size"``): whether
    image ``i`` (float ``[B, 3, H, W]`` in [-1, 1]) shows ``attributes[i]``'s value."""
    _check(images_B3HW, attributes)
    images = images_B3HW.detach().float().cpu()
    hits: dict[str, torch.Tensor] = {}
    if judge is not None:
        if judge.num_classes != NUM_DIGITS:
            raise SemtokError(
                f"prompt scores: the judge knows {judge.num_classes} classes, expected 10 digits"
            )
        predicted = judge.classify(images, batch_size=batch_size).argmax(dim=1)
        hits["digit"] = predicted == torch.tensor([a[0] for a in attributes], dtype=torch.long)
    colours, sizes = measure_colour(images, COLOURS), measure_size(images, SIZES)
    hits["colour"] = torch.tensor([found == a[1] for found, a in zip(colours, attributes, strict=True)])
    hits["size"] = torch.tensor([found == a[2] for found, a in zip(sizes, attributes, strict=True)])
    return hits


def wilson_lower(hits: int, count: int, z: float = 2.576) -> float:
    """Lower end of the Wilson score interval of ``hits / count`` (default z: two-sided 99%)."""
    if count == 0:
        return 0.0
    share = hits / count
    centre = share + z * z / (2 * count)
    spread = z * math.sqrt(share * (1 - share) / count + z * z / (4 * count * count))
    return (centre - spread) / (1 + z * z / count)


def prompt_scores(
    images_B3HW: torch.Tensor,
    attributes: list[Attributes],
    held_out: list[bool] | None = None,
    judge: Any = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Prompt-following scores of images ``[B, 3, H, W]`` (float in [-1, 1]) generated for ``attributes[i]``.

    ``held_out[i]``: whether row ``i`` is a held-out (digit, colour) pair (default: membership in
    :data:`HELD_OUT`, as :meth:`CaptionedMNIST.held_out` says). ``judge``: a 10-class
    :class:`semtok.evaluation.judge.Judge`; without one the digit is not measured. Returns::

        {"measured": ["digit", "colour", "size"],   # without a judge: ["colour", "size"]
         "skipped": {"digit": "no judge given ..."},  # empty with a judge
         "chance": {"digit": 0.1, "colour": 1/6, "size": 0.5, "all_correct": 1/120},  # of the measured ones
         "all" | "seen" | "held_out": {
             "count": n, "digit": acc or None, "colour": acc, "size": acc, "all_correct": acc,
             "above_chance": {attribute: bool}}}  # 99% Wilson lower bound above chance

    Accuracies are floats in [0, 1], None for a group without rows (and "digit" None without a judge);
    "all_correct" is the share of rows with every measured attribute right.
    """
    hits = attribute_hits(images_B3HW, attributes, judge, batch_size)
    if held_out is None:
        held_out = [(a[0], a[1]) in HELD_OUT for a in attributes]
    if len(held_out) != len(attributes):
        raise SemtokError(f"prompt scores: {len(attributes)} attributes but {len(held_out)} held-out flags")
    measured = list(hits)
    hits["all_correct"] = torch.stack([hits[name] for name in measured]).all(dim=0)
    chance = {name: CHANCE[name] for name in measured}
    chance["all_correct"] = math.prod(chance.values())
    flags = torch.tensor([bool(flag) for flag in held_out], dtype=torch.bool)
    rows = {"all": torch.ones_like(flags), "seen": ~flags, "held_out": flags}
    result: dict[str, Any] = {
        "measured": measured,
        "skipped": {} if judge is not None else {"digit": NO_JUDGE},
        "chance": chance,
    }
    for group, selected in rows.items():
        count = int(selected.sum())
        scores: dict[str, Any] = {"count": count, "digit": None}
        above: dict[str, bool] = {}
        for name, hit in hits.items():
            right = int(hit[selected].sum())
            scores[name] = right / count if count else None
            above[name] = wilson_lower(right, count) > chance[name]
        scores["above_chance"] = above
        result[group] = scores
    return result


def format_prompt_scores(result: dict[str, Any]) -> str:
    """A markdown table of :func:`prompt_scores`' result: one row per attribute, one column per group
    (accuracy and rows right), chance in its own column; skipped attributes and the meaning of "all correct"
    follow the table. A ``*`` marks accuracies clearly above chance (99% Wilson lower bound)."""
    header = ["attribute", "chance"] + [f"{g.replace('_', '-')} (n={result[g]['count']})" for g in GROUPS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in [*result["measured"], "all_correct"]:
        cells = [name.replace("_", " "), f"{result['chance'][name]:.3f}"]
        for group in GROUPS:
            scores = result[group]
            if scores[name] is None:
                cells.append("-")
                continue
            right = round(scores[name] * scores["count"])
            mark = "*" if scores["above_chance"][name] else ""
            cells.append(f"{scores[name]:.3f}{mark} ({right}/{scores['count']})")
        lines.append("| " + " | ".join(cells) + " |")
    *first, last = result["measured"]
    lines.append(f"all correct = {', '.join(first)} and {last} right; * = clearly above chance (99% Wilson)")
    lines.extend(f"{name}: skipped, {reason}" for name, reason in result["skipped"].items())
    return "\n".join(lines)
