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
from pathlib import Path
from typing import Any

import torch

from semtok.data import build_dataset
from semtok.data.processes import Processes
from semtok.errors import SemtokError
from semtok.evaluation.sample_features import sample_features
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


def reference_batch(path: str | Path, extractor: Any, progress: bool) -> tuple[Any, Any, Any, str]:
    """(mu, sigma, reference features [M, 2048] or None, description) of a reference ``.npz``: its ``mu`` / ``sigma``
    (as the ADM evaluator reads them), and the features of its images (``arr_0``, read in chunks) when it holds
    any, for precision / recall."""
    from semtok.metrics.image_batches import image_batch_shape, iter_image_batch, npz_keys, read_stats

    mu, sigma = read_stats(path)
    if "arr_0" not in npz_keys(path, "reference"):
        return mu, sigma, None, f"statistics of {path}"
    count = image_batch_shape(path)[0]
    batches = (torch.from_numpy(chunk.copy()).permute(0, 3, 1, 2) for chunk in iter_image_batch(path, 64))
    features = extractor.extract(batches, progress=progress)
    return mu, sigma, features, f"statistics of {path} ({count} images in it for precision / recall)"


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
    num_samples: int | None = None,
    reference: str | Path | None = None,
    samples_npz: str | Path | None = None,
    processes: Processes | None = None,
    labels: str | None = None,
) -> dict[str, Any] | None:
    """gFID, precision, recall, Inception Score (or why skipped), class accuracy of an AR or masked run's samples.

    ``data``: the reference images (default: the data set the model's tokens came from). ``samples_out``: also
    write a grid of the first 64 samples there (PNG with provenance). ``limit``: only the labels of an evenly spaced
    subset of that many reference images (and that subset as the reference). ``labels``: how an image folder's
    labels are read (:func:`~semtok.data.build.build_dataset`; default: as the model's tokens were made when
    ``data`` is not given, else "auto"). ``clip_weights`` (text models): an
    open_clip weights file of ``clip_model`` for the CLIP score (OpenAI's weights as a file: ``ViT-B-16-quickgelu``).
    ``num_samples``: sample for an evenly spaced ``num_samples`` of the split's labels (prompts) instead of all of
    them (the split's label set, without repeats: more is an error); the reference stays the whole split.
    ``reference``: an ``.npz`` with ``mu`` / ``sigma`` (the ADM reference batch ``VIRTUAL_imagenet256_labeled.npz``,
    or ``semtok stats`` output) instead of the split's statistics; its images (``arr_0``), when present, are the
    precision / recall reference, and its ``mu_s`` / ``sigma_s``, when present, give the sFID (ADM's spatial
    features: ``mixed_6/conv``, first 7 channels). ``samples_npz``: also write the samples as an ADM sample batch (``arr_0`` uint8
    [N, H, W, 3], ``arr_1`` labels), the exact images scored. ``processes``: split the sampling over the job's
    processes (:func:`semtok.data.processes.join`); the main process returns the results, the others None.
    """
    from semtok.evaluation.common import evenly_spaced, fid_reference
    from semtok.metrics import InceptionFeatures, feature_stats, frechet_distance
    from semtok.metrics.image_batches import has_stats, read_stats
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
    conditioned = dataset
    if num_samples is not None:
        if num_samples < 1 or num_samples > len(dataset):
            raise SemtokError(
                f"--num-samples {num_samples}: the {split} split of '{data}' has {len(dataset)} labels and the "
                f"protocol samples each at most once (no repeats); ask for 1..{len(dataset)} or use a larger split"
            )
        conditioned = evenly_spaced(dataset, num_samples)
    label_mode = labels
    labels, prompts, attributes = dataset_labels(conditioned), None, None
    if sampler.is_text:
        prompts, attributes = caption_prompts(conditioned, data, split)
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
    condition = {"prompts": prompts} if sampler.is_text else {"labels_B": labels}
    extractor = InceptionFeatures(weights=inception_weights)
    spatial = reference is not None and has_stats(reference, spatial=True)  # ADM's sFID statistics
    collected = sample_features(
        sampler,
        condition,
        sampling,
        seed,
        batch_size,
        extractor,
        judge=judge_model,
        keep_images=sampler.is_text or samples_npz is not None,
        processes=processes,
        progress=progress,
        spatial=spatial,
    )
    if collected is None:  # not the main process: the main one computes and writes the metrics
        return None
    features, logits = collected.features, collected.logits
    if reference is not None:
        mu_ref, sigma_ref, reference_features, reference_about = reference_batch(
            reference, extractor, progress
        )
    else:
        reference_features = fid_reference(
            dataset, data, split, image_size, extractor, limit, progress, features=True, labels=label_mode
        )
        mu_ref, sigma_ref = feature_stats(reference_features)
        reference_about = f"{data} {split} images ({len(dataset)} images, {image_size} px)"
    mu, sigma = feature_stats(features)
    results: dict[str, Any] = {
        "model": str(sampler.model_dir),
        "generator_kind": sampler.kind,
        "tokenizer": str(sampler.tokenizer_dir),
        "tokenizer_kind": sampler.tokenizer.kind,
        "data": str(data),
        "split": split,
        "labels": label_mode,
        "samples": int(features.shape[0]),
        "protocol": f"one sample per {split} image, prompted with its first caption"
        if sampler.is_text
        else f"one sample per {split} label",
        "seed": seed,
        "sampling": dataclasses.asdict(sampling),
        "processes": (processes or Processes()).world_size,
        "sample_seconds": round(collected.seconds, 1),
        "gfid": frechet_distance(mu, sigma, mu_ref, sigma_ref),
        "fid_extractor": extractor.extractor_id,
        "fid_reference": reference_about,
    }
    if spatial:
        results["sfid"] = frechet_distance(
            *feature_stats(collected.spatial), *read_stats(reference, spatial=True)
        )
    else:
        results["sfid_skipped"] = "needs a --reference .npz with the spatial statistics mu_s / sigma_s"
    if num_samples is not None:
        results["protocol"] += f", {num_samples} evenly spaced"
    if reference_features is not None:
        results.update(precision_recall(reference_features, features, k=3))
        results["precision_recall_k"] = 3
    else:
        results["precision_recall_skipped"] = "the reference file holds statistics only, no images (arr_0)"
    results.update(inception_score_report(logits))
    images = collected.images
    if sampler.is_text:
        floats = images.float() / 127.5 - 1.0  # the uint8 samples, back in [-1, 1]
        results.update(text_scores(floats, prompts, attributes, judge_model, clip_weights, clip_model))
        if judge_model is not None:
            results["judge"] = str(judge_dir)
    elif judge_model is not None:
        results["class_accuracy"] = float((collected.predicted == labels.numpy()).mean())
        results["judge"] = str(judge_dir)
    else:
        reason = (
            "no --judge given (train one with `semtok train judge`)"
            if judge is None
            else "unconditional model"
        )
        results["class_accuracy_skipped"] = reason
    if samples_npz is not None:
        from semtok.metrics.image_batches import write_sample_batch

        chosen = None if sampler.is_text or sampler.num_classes == 0 else labels.numpy()
        path = write_sample_batch(samples_npz, images.permute(0, 2, 3, 1).numpy(), chosen)
        results["samples_npz"] = str(path)
    if samples_out is not None:
        from semtok.visual.provenance import save_png

        first = min(64, images.shape[0])
        shown = {"prompts": prompts[:first]} if sampler.is_text else {"classes": labels[:first].tolist()}
        provenance = sampler.provenance(sampling, seed, batch_size, **shown)
        results["samples_grid"] = str(save_png(images[:first].float() / 127.5 - 1.0, samples_out, provenance))
    return results
