"""Generation metrics of an AR or masked model + its tokenizer (``semtok evaluate RUN --generation``).

Protocol: one sample per label of the reference split (the paper's "one sample per val label"), decoded to pixels
by the tokenizer; then, in the TF-Inception pool3 feature space:
- gFID against the reference split's cached statistics;
- precision and recall (k-NN manifolds, k = 3) against the same reference features;
- Inception Score only with the full Inception weights (``inception_weights``); otherwise reported as skipped;
- class accuracy: the share of samples a judge classifier (``semtok train judge``) assigns to the class they were
  generated for (skipped, with the reason, without a judge).

A text model gets one sample per reference image, prompted with its first caption (MS-COCO val2017: the caption of
lowest annotation id, as :mod:`semtok.data.captioned_folder` keeps one per val image); FID etc. as above (FID_T2I),
then, on the captioned MNIST default, the prompt scores (:mod:`semtok.evaluation.prompt_scores`: digit by the judge,
colour, size, all-correct, seen vs held-out pairs; flat keys ``prompt_{digit,colour,size,all}_{seen,held_out}`` and
``prompt_all``), and the CLIP score with ``clip_weights``. ``measured`` lists what was measured.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.generators.sampler import Sampler
from semtok.generators.sampling import SamplingConfig


def dataset_labels(dataset: Any) -> torch.Tensor:
    """int64 labels [N] of a data set (-1 = unlabelled)."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [dataset[i][1] for i in range(len(dataset))]
    return torch.as_tensor(labels, dtype=torch.long).reshape(-1)


def caption_prompts(dataset: Any, data: str, split: str) -> tuple[list[str], list[Any] | None]:
    """(the first caption of every item, their captioned-MNIST attributes or None) of a data set or a subset."""
    base, indices = dataset, range(len(dataset))
    if isinstance(dataset, torch.utils.data.Subset):
        base, indices = dataset.dataset, dataset.indices
    if not hasattr(base, "captions_of"):
        raise SemtokError(
            f"data set '{data}' ({split}) has no captions: a text model is evaluated on a captioned data set "
            "(mnist5k-captioned, a COCO root, a folder with captions.jsonl)"
        )
    prompts = [base.captions_of(int(i))[0] for i in indices]
    attributes = getattr(base, "attributes", None)
    return prompts, None if attributes is None else [attributes[int(i)] for i in indices]


def text_scores(
    images: torch.Tensor,
    prompts: list[str],
    attributes: list[Any] | None,
    judge_model: Any,
    clip_weights: str | None,
    clip_model: str,
) -> dict[str, Any]:
    """The prompt scores (with attributes) and the CLIP score (with weights) of text-prompted samples, or why not."""
    results: dict[str, Any] = {"class_accuracy_skipped": "text model: see the prompt scores"}
    measured = ["gfid", "precision", "recall"]
    if attributes is not None:
        from semtok.evaluation.prompt_scores import prompt_scores

        scores = prompt_scores(images, attributes, judge=judge_model)
        results["prompt_scores"] = scores
        for group in ("seen", "held_out"):
            for key in ("digit", "colour", "size", "all_correct"):
                if scores[group][key] is not None:
                    results[f"prompt_{key.replace('_correct', '')}_{group}"] = scores[group][key]
        results["prompt_all"] = scores["all"]["all_correct"]
        measured += [f"prompt {name}" for name in scores["measured"]]
    else:
        results["prompt_scores_skipped"] = (
            "the data set has no attribute annotations (only mnist5k-captioned)"
        )
    if clip_weights:
        from semtok.metrics.clip_score import ClipScorer

        scorer = ClipScorer(clip_model, weights=clip_weights)
        results["clip_score"] = float(scorer.score(images, prompts).mean())
        results["clip_model"] = f"{clip_model} ({clip_weights})"
        measured.append("clip_score")
    else:
        results["clip_score_skipped"] = "no CLIP weights given (--clip-weights: an open_clip weights file)"
    results["measured"] = measured
    return results


def evaluate_generation(
    path: str | Path,
    data: str | None = None,
    split: str = "val",
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    judge: str | Path | None = None,
    inception_weights: str | None = None,
    batch_size: int = 64,
    tokenizer: str | Path | None = None,
    progress: bool = True,
    samples_out: str | Path | None = None,
    limit: int | None = None,
    clip_weights: str | None = None,
    clip_model: str = "ViT-B-16",
    labels: str | None = None,
) -> dict[str, Any]:
    """gFID, precision, recall, Inception Score (or why skipped), class accuracy of an AR or masked run's samples.

    ``data``: the reference images (default: the data set the model's tokens came from). ``samples_out``: also
    write a grid of the first 64 samples there (PNG with provenance). ``limit``: only the labels of an evenly spaced
    subset of that many reference images (and that subset as the reference). ``labels``: how an image folder's
    labels are read (:func:`~semtok.data.build.build_dataset`; default: as the model's tokens were made when
    ``data`` is not given, else "auto"). ``clip_weights`` (text models): an
    open_clip weights file of ``clip_model`` for the CLIP score (OpenAI's weights as a file: ``ViT-B-16-quickgelu``).
    """
    from semtok.evaluation.common import evenly_spaced, fid_reference
    from semtok.metrics import InceptionFeatures, feature_stats, frechet_distance
    from semtok.metrics.inception_score import inception_score_report
    from semtok.metrics.precision_recall import precision_recall

    if samples_out is not None and Path(samples_out).suffix.lower() != ".png":
        raise SemtokError(
            f"samples_out '{samples_out}': expected a .png file (it carries the provenance inside)"
        )
    if batch_size < 1:
        raise SemtokError(f"batch_size: expected an int >= 1, got {batch_size}")
    sampling = sampling or SamplingConfig()
    sampler = Sampler(path, tokenizer)
    recorded = sampler.info.get("data") or {}
    if labels is None:
        labels = str(recorded.get("labels") or "auto") if not data else "auto"
    data = data or recorded.get("dataset")
    if not data:
        raise SemtokError(
            f"'{sampler.model_dir}' does not record its data set: give the reference data set (parameter 'data')"
        )
    model = "AR model" if sampler.family == "ar" else "masked model"  # in messages
    judge_model = None
    if judge is not None and (sampler.num_classes > 0 or sampler.is_text):  # loaded before any sampling
        from semtok.evaluation.judge import Judge
        from semtok.hub.pretrained import resolve_model_dir

        judge_dir = resolve_model_dir(judge, "judge")
        judge_model = Judge.from_pretrained(judge_dir)
        if judge_model.num_classes != sampler.num_classes and not sampler.is_text:
            raise SemtokError(
                f"judge '{judge}' knows {judge_model.num_classes} classes, the {model} {sampler.num_classes}"
            )
    image_size = sampler.tokenizer.config.image_size
    dataset = evenly_spaced(build_dataset(data, split, image_size, augment="none", labels=labels), limit)
    labels, prompts, attributes = dataset_labels(dataset), None, None
    if sampler.is_text:
        prompts, attributes = caption_prompts(dataset, data, split)
    elif sampler.num_classes > 0:
        if int(labels.min()) < 0:
            raise SemtokError(
                f"data set '{data}' ({split}) is unlabelled but the {model} is class-conditional"
            )
        if int(labels.max()) >= sampler.num_classes:
            raise SemtokError(
                f"data set '{data}' ({split}) has label {int(labels.max())}, the {model} only "
                f"{sampler.num_classes} classes"
            )
    started = time.time()
    condition = {"prompts": prompts} if sampler.is_text else {"labels_B": labels}
    images, _ = sampler.sample(
        sampling=sampling, seed=seed, batch_size=batch_size, progress=progress, **condition
    )
    sample_seconds = time.time() - started

    extractor = InceptionFeatures(weights=inception_weights)
    reference = fid_reference(
        dataset, data, split, image_size, extractor, limit, progress, features=True, labels=labels
    )
    chunks = images.split(64)
    if extractor.has_logits:
        features, logits = extractor.extract_with_logits(chunks, progress=progress)
    else:
        features, logits = extractor.extract(chunks, progress=progress), None
    mu, sigma = feature_stats(features)
    mu_ref, sigma_ref = feature_stats(reference)
    results: dict[str, Any] = {
        "model": str(sampler.model_dir),
        "generator_kind": sampler.kind,
        "tokenizer": str(sampler.tokenizer_dir),
        "tokenizer_kind": sampler.tokenizer.kind,
        "data": str(data),
        "split": split,
        "labels": labels,
        "samples": int(images.shape[0]),
        "protocol": f"one sample per {split} image, prompted with its first caption"
        if sampler.is_text
        else f"one sample per {split} label",
        "seed": seed,
        "sampling": dataclasses.asdict(sampling),
        "sample_seconds": round(sample_seconds, 1),
        "gfid": frechet_distance(mu, sigma, mu_ref, sigma_ref),
        **{key: value for key, value in precision_recall(reference, features, k=3).items()},
        "precision_recall_k": 3,
        "fid_extractor": extractor.extractor_id,
        "fid_reference": f"{data} {split} images ({len(dataset)} images, {image_size} px)",
    }
    results.update(inception_score_report(logits))
    if sampler.is_text:
        results.update(text_scores(images, prompts, attributes, judge_model, clip_weights, clip_model))
        if judge_model is not None:
            results["judge"] = str(judge_dir)
    elif judge_model is not None:
        from semtok.evaluation.judge import class_accuracy

        results["class_accuracy"] = class_accuracy(judge_model, images, labels)
        results["judge"] = str(judge_dir)
    else:
        reason = (
            "no --judge given (train one with `semtok train judge`)"
            if judge is None
            else "unconditional model"
        )
        results["class_accuracy_skipped"] = reason
    if samples_out is not None:
        from semtok.visual.provenance import save_png

        first = min(64, images.shape[0])
        shown = {"prompts": prompts[:first]} if sampler.is_text else {"classes": labels[:first].tolist()}
        provenance = sampler.provenance(sampling, seed, batch_size, **shown)
        results["samples_grid"] = str(save_png(images[:first], samples_out, provenance))
    return results
