"""Sample files that carry their provenance (tokenizer, AR model and weights hash, classes, seed, sampling
settings): PNG files hold it as a ``semtok`` text chunk (JSON), and a ``.json`` sidecar repeats it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from torchvision.utils import make_grid

from semtok.data.processes import Processes
from semtok.errors import SemtokError
from semtok.generators.sampler import Sampler
from semtok.generators.sampling import SamplingConfig


def save_png(
    images_B3HW: torch.Tensor,
    path: str | Path,
    provenance: dict[str, Any],
    per_row: int = 8,
    sidecar: bool = True,
) -> Path:
    """Write images in [-1, 1] as one PNG grid (``per_row`` across) with ``provenance`` inside (text chunk
    ``semtok``) and, with ``sidecar``, beside it (``PATH.json``)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise SemtokError(f"sample file '{path}': expected a .png name (the provenance is stored inside)")
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = make_grid((images_B3HW.float().clamp(-1, 1) + 1) / 2, nrow=per_row, padding=2, pad_value=1.0)
    array = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    text = json.dumps(provenance)
    info = PngInfo()
    info.add_text("semtok", text)
    Image.fromarray(array).save(path, pnginfo=info)
    if sidecar:
        path.with_suffix(".json").write_text(json.dumps(provenance, indent=2))
    return path


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance a sample PNG written by :func:`save_png` carries."""
    with Image.open(path) as image:
        text = image.info.get("semtok")
    if text is None:
        raise SemtokError(f"'{path}' carries no semtok provenance")
    return json.loads(text)


def write_samples(
    sampler: Sampler,
    labels_B: torch.Tensor,
    out: str | Path,
    sampling: SamplingConfig,
    seed: int = 0,
    per_row: int = 8,
    batch_size: int = 64,
    images_dir: str | Path | None = None,
    progress: bool = False,
    prompts: list[str] | None = None,
    processes: Processes | None = None,
) -> Path | None:
    """Sample one image per label (or per prompt, for a text model: ``labels_B`` None), save the grid to ``out``
    (rows of ``per_row``), and with ``images_dir`` every image as its own PNG (``NNNNN_classC.png`` /
    ``NNNNN_prompt.png``), each recording its class or prompt, index and the shared provenance. ``processes``: the
    batches are split over the job's processes (same images as one process) and the main one writes (the others
    return None)."""
    images, _ = sampler.sample(
        labels_B, sampling, seed, batch_size, progress, prompts=prompts, processes=processes
    )
    if processes is not None and not processes.is_main:
        return None
    if prompts is not None:
        return _write_prompt_samples(
            sampler, images, prompts, out, sampling, seed, per_row, batch_size, images_dir
        )
    labels = [int(v) for v in labels_B]
    names = sampler.class_names
    provenance = sampler.provenance(
        sampling,
        seed,
        batch_size,
        classes=labels,
        class_names=[names[v] if v < len(names) else str(v) for v in labels],
        layout=f"row-major grid, {per_row} per row, in the order of 'classes'",
    )
    path = save_png(images, out, provenance, per_row=per_row)
    if images_dir is not None:
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            single = {**provenance, "classes": [label], "index": index, "layout": "one image"}
            single.pop("class_names")
            save_png(
                image[None], Path(images_dir) / f"{index:05d}_class{label}.png", single, 1, sidecar=False
            )
    return path


def _write_prompt_samples(
    sampler: Sampler,
    images: torch.Tensor,
    prompts: list[str],
    out: str | Path,
    sampling: SamplingConfig,
    seed: int,
    per_row: int,
    batch_size: int,
    images_dir: str | Path | None,
) -> Path:
    provenance = sampler.provenance(
        sampling,
        seed,
        batch_size,
        prompts=prompts,
        layout=f"row-major grid, {per_row} per row, in the order of 'prompts'",
    )
    path = save_png(images, out, provenance, per_row=per_row)
    if images_dir is not None:
        for index, (image, prompt) in enumerate(zip(images, prompts, strict=True)):
            single = {**provenance, "prompts": [prompt], "index": index, "layout": "one image"}
            save_png(image[None], Path(images_dir) / f"{index:05d}_prompt.png", single, 1, sidecar=False)
    return path
