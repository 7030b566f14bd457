"""Tokenize a data set once, so proposal networks train on memory-mapped token files (``semtok tokenize``).

With augmentation, ``views`` augmented copies of every image are tokenized (as LlamaGen pre-tokenises flips and
crops): view ``k`` of image ``i`` is the data set's augmentation at epoch ``k``, a pure function of
``(seed, k, i)``. Rows are view-major: row ``k * N + i``. The manifest records views, augmentation and seed.

A captioned data set (one with ``captions_of(index) -> list[str]``: ``mnist5k-captioned``, a COCO root, a
``captions.jsonl`` folder) also gets ``OUT.captions.json``: one list of captions per row, views repeating their
image's captions (:mod:`semtok.data.token_captions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from semtok.config import to_dict
from semtok.data.build import build_dataset
from semtok.data.token_captions import write_token_captions
from semtok.data.token_file import write_token_file
from semtok.errors import SemtokError


def tokenize_dataset(
    tokenizer_path: str | Path,
    data: str,
    split: str,
    out: str | Path,
    batch_size: int = 128,
    views: int = 1,
    augment: str = "none",
    crop_scale: tuple[float, float] = (0.08, 1.0),
    seed: int = 0,
    progress: bool = True,
    labels: str = "auto",
) -> Path:
    """Token ids of a whole data split, written as a token file; returns the manifest path ``OUT.json``.

    ``OUT.npy``: ids ``[views * N, h, w]`` (uint16 for codebooks of at most 65,536 codes, else int32) in
    ``[0, num_codes)``; ``OUT.labels.npy``: int64 ``[views * N]`` (-1 = unlabelled). ``views`` > 1 needs
    ``augment`` "flip" or "crop_flip" (random resized crops of ``crop_scale`` of the area, then a flip) on the
    train split or "all" (every view would otherwise be the same image); rows are view-major. ``split``: "train",
    "val" or "all" (every image of the data set); ``labels``: how an image folder's labels are read ("auto",
    "folders", "none": :func:`~semtok.data.build.build_dataset`); the manifest records both. ``tokenizer_path``: a run
    folder or a tokenizer folder. Read the result with :func:`semtok.load_tokens`. A captioned data set also
    writes ``OUT.captions.json`` (one list of str per row; read it with
    :func:`semtok.data.token_captions.read_token_captions`), named by the manifest's ``captions_file``; its
    ``data.captions`` records ``{"images": N, "captions": the captions of the N images}`` (one view's worth), plus
    the data set's ``caption_report`` counts (images without captions, captions without images) when it has one.
    """
    from semtok.hub.pretrained import resolve_model_dir
    from semtok.tokenizers.base import Tokenizer

    if batch_size < 1:
        raise SemtokError(f"batch_size: expected an int >= 1, got {batch_size}")
    if views < 1:
        raise SemtokError(f"views: expected a positive number of views, got {views}")
    if views > 1 and (augment == "none" or split == "val"):
        raise SemtokError(
            f"views {views}: several views need augment 'flip' or 'crop_flip' on the train split or all"
        )
    label_mode = labels  # (``labels`` below: the rows' labels)
    tokenizer_dir = resolve_model_dir(tokenizer_path, "tokenizer")
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    size = tokenizer.config.image_size
    dataset = build_dataset(
        data, split, size, augment=augment, crop_scale=crop_scale, seed=seed, labels=label_mode
    )
    captioned = hasattr(dataset, "captions_of")
    ids, labels, captions = [], [], []
    with tqdm(total=views * len(dataset), desc="tokenize", unit="img", disable=not progress) as bar:
        for view in range(views):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(view)
            for start in range(0, len(dataset), batch_size):
                items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
                with torch.inference_mode():
                    ids.append(tokenizer.encode(torch.stack([image for image, _ in items])))
                labels.append(torch.tensor([label for _, label in items]))
                if captioned:  # after loading: an undecodable image's replacement brings its own captions
                    captions.extend(dataset.captions_of(i) for i in range(start, start + len(items)))
                bar.update(len(items))
    meta: dict[str, Any] = {
        "tokenizer": {
            "path": str(tokenizer_dir.resolve()),
            "kind": tokenizer.kind,
            "config": to_dict(tokenizer.config),
        },
        "data": {
            "dataset": str(data),
            "split": split,
            "labels": label_mode,
            "image_size": size,
            "augment": augment,
            "crop_scale": list(crop_scale) if augment == "crop_flip" else None,
            "seed": seed,
            "views": views,
            "images_per_view": len(dataset),
            "row_order": "view-major: row = view * images_per_view + image",
        },
        "num_classes": getattr(dataset, "num_classes", 0),
        "class_names": list(getattr(dataset, "class_names", [])),
        "skipped_files": list(getattr(dataset, "skipped_files", [])),
    }
    if captioned:
        first_view = captions[: len(dataset)]
        meta["data"]["captions"] = {
            "images": len(first_view),
            "captions": sum(len(rows) for rows in first_view),
            **getattr(dataset, "caption_report", {}),
        }
        meta["captions_file"] = write_token_captions(out, captions).name
    return write_token_file(out, torch.cat(ids), torch.cat(labels), tokenizer.num_codes, meta)
