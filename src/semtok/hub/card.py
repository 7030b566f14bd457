"""The model card (``README.md``) of a model folder: hub front matter, what the model is, how it was trained, its
measured metrics with the files they came from, its config, and how to load it.

Everything in a card is read from files: the folder's ``config.json`` (kind, config, ``info`` provenance), and,
when the folder is a run's model sub-folder (``RUN/tokenizer``, ``RUN/ar``, ``RUN/nar``, ``RUN/judge``), the run's
``summary.json`` (training steps, images, processes) and its evaluation JSONs (``eval_*.json``, ``probe_*.json``:
each number a metric, each string / bool / short list a protocol field of that file). ``facts`` adds what only the
loaded model knows (codebook size, token grid, parameter count).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from semtok.errors import SemtokError
from semtok.hub.files import CONFIG_FILE, atomic_write

CARD_FILE = "README.md"
RUN_FOLDERS = ("tokenizer", "ar", "nar", "judge")
EVAL_PATTERNS = ("eval_*.json", "probe_*.json")
TOKENIZER_KINDS = ("vqkd", "cluster", "vqgan", "fsq", "cvq")
# kind -> (what it is, Python loader, hub tags)
_KINDS: dict[str, tuple[str, str, list[str]]] = {
    "ar": (
        "autoregressive (GPT-style) proposal network over token grids",
        "ARTransformer",
        ["image-generation"],
    ),
    "nar": (
        "masked (MaskGIT / MAGE) proposal network over token grids",
        "MaskedTransformer",
        ["image-generation"],
    ),
    "judge": (
        "image classifier that judges the class of generated samples",
        "Judge",
        ["image-classification"],
    ),
}
_IMPORTS = {
    "Tokenizer": "from semtok.tokenizers import Tokenizer",
    "ARTransformer": "from semtok.generators import ARTransformer",
    "MaskedTransformer": "from semtok.generators.masked import MaskedTransformer",
    "Judge": "from semtok.evaluation.judge import Judge",
}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SemtokError(f"'{path}' is not readable JSON ({type(error).__name__})") from None


def evaluation_files(folder: Path, source: Path | None = None) -> list[Path]:
    """The evaluation JSONs of the model in ``source`` (default ``folder``): in the folder itself, and in its run
    folder when it is a run's model sub-folder; sorted by name."""
    source = Path(source or folder)
    places = [source]
    if source.name in RUN_FOLDERS:
        places.append(source.parent)
    found = {p.resolve(): p for place in places for pattern in EVAL_PATTERNS for p in place.glob(pattern)}
    return sorted(found.values(), key=lambda p: (p.name, str(p)))


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or value is None


def _metrics_section(files: list[Path]) -> list[str]:
    if not files:
        return [
            "No evaluation results were found beside this model (`semtok evaluate` / `semtok probe` write them)."
        ]
    lines = ["| metric | value | file |", "|---|---|---|"]
    protocols: list[str] = []
    for path in files:
        results = _read_json(path)
        if not isinstance(results, dict):
            continue
        for key, value in results.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                shown = f"{value:.4g}" if isinstance(value, float) else str(value)
                lines.append(f"| {key} | {shown} | `{path.name}` |")
        fields = {
            k: v
            for k, v in results.items()
            if _scalar(v)
            or (isinstance(v, list) and len(v) <= 12 and all(_scalar(x) or isinstance(x, int) for x in v))
        }
        if fields:
            protocols.append(
                f"- `{path.name}`: " + "; ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items())
            )
    return [*lines, "", "Protocol of each file (its non-numeric fields):", "", *protocols]


def _training_section(info: dict[str, Any], summary: dict[str, Any] | None) -> list[str]:
    lines = []
    data = info.get("data")
    if isinstance(data, dict) and data:
        lines.append(
            "- data: "
            + ", ".join(f"{k} {json.dumps(v)}" for k, v in data.items() if _scalar(v) or isinstance(v, int))
        )
    elif isinstance(data, str):
        lines.append(f"- data: {data}")
    for key, label in (("tokens", "token file"), ("tokenizer", "tokenizer"), ("source", "source")):
        if isinstance(info.get(key), str) and info[key]:
            lines.append(f"- {label}: `{info[key]}`")
    names = info.get("class_names")
    if isinstance(names, list) and names:
        shown = ", ".join(map(str, names[:10])) + (" ..." if len(names) > 10 else "")
        lines.append(f"- classes: {len(names)} ({shown})")
    if summary:
        keys = (
            "steps",
            "train_images",
            "processes",
            "device",
            "train_seconds_this_session",
            "resumed_from_step",
        )
        lines.append(
            "- run (`summary.json`): " + ", ".join(f"{k} {summary[k]}" for k in keys if k in summary)
        )
        losses = summary.get("final_losses")
        if isinstance(losses, dict) and losses:
            lines.append(
                "- final losses: "
                + ", ".join(f"{k} {v:.4g}" for k, v in losses.items() if isinstance(v, float))
            )
    return lines or ["No training provenance was recorded with this model."]


def _architecture(kind: str, config: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    lines = []
    for key, label in (("num_codes", "codebook"), ("grid", "token grid"), ("parameters", "parameters")):
        if key in facts:
            value = facts[key]
            lines.append(
                f"- {label}: {'x'.join(map(str, value)) if isinstance(value, list | tuple) else value}"
            )
    teacher = config.get("teacher")
    if isinstance(teacher, dict) and teacher.get("name"):
        lines.append(f"- teacher: `{teacher['name']}`")
    quantizer = config.get("quantizer")
    if isinstance(quantizer, dict):
        lines.append(f"- quantizer: {quantizer.get('num_codes')} codes x {quantizer.get('code_dim')} dims")
    for key in ("image_size", "patch_size", "encoder", "levels", "style", "size", "depth", "width", "heads"):
        if key in config and config[key] not in (None, "", 0):
            lines.append(f"- {key}: {json.dumps(config[key])}")
    for key in ("vocab_size", "seq_len", "num_classes", "text_encoder"):
        if config.get(key):
            lines.append(f"- {key}: {json.dumps(config[key])}")
    if kind in TOKENIZER_KINDS:
        lines.append(
            f"- pixel decoder: {'yes' if config.get('pixel_decoder') or kind in ('vqgan', 'fsq', 'cvq') else 'no'}"
        )
    return lines


def _front_matter(kind: str, config: dict[str, Any], info: dict[str, Any]) -> list[str]:
    tags = ["semtok", kind]
    if kind in TOKENIZER_KINDS:
        tags.append("image-tokenizer")
        pipeline = "image-feature-extraction"
    else:
        tags += _KINDS.get(kind, ("", "", []))[2]
        text = bool(config.get("text_encoder"))
        pipeline = {"judge": "image-classification"}.get(kind, "text-to-image" if text else "")
        if kind in ("ar", "nar"):
            tags.append("text-to-image" if text else "class-conditional")
    lines = ["---", "library_name: semtok"]
    if isinstance(info.get("license"), str) and info["license"]:
        lines.append(f"license: {info['license']}")
    lines.append("tags:")
    lines += [f"- {tag}" for tag in dict.fromkeys(tags)]
    if pipeline:
        lines.append(f"pipeline_tag: {pipeline}")
    return [*lines, "---"]


def _loading(kind: str, repo_id: str) -> list[str]:
    if kind in TOKENIZER_KINDS:
        loader, verbs = (
            "Tokenizer",
            [
                f"semtok evaluate {repo_id} --data mnist5k",
                f"semtok tokenize {repo_id} --data /data/images --out tokens/train",
            ],
        )
        use = "ids = model.encode(images)  # [B, 3, H, W] in [-1, 1] -> [B, h, w] int64"
    elif kind in ("ar", "nar"):
        loader, verbs = _KINDS[kind][1], [f"semtok sample {repo_id} --class 0 --n 16 --out samples.png"]
        use = "# decoded by the tokenizer recorded in model.info['tokenizer'] (semtok sample)"
    else:
        loader, verbs = _KINDS.get(kind, ("", "Judge", []))[1], []
        use = "logits = model.classify(images)"
    return [
        "```python",
        _IMPORTS[loader],
        "",
        f'model = {loader}.from_pretrained("{repo_id}")  # a local folder or a hub repo id',
        use,
        "```",
        *(["", "```bash", *verbs, "```"] if verbs else []),
    ]


def model_card(
    folder: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    facts: dict[str, Any] | None = None,
    repo_id: str | None = None,
) -> str:
    """The model card text (Markdown with YAML front matter) of the model folder ``folder``.

    ``source``: the folder the model was loaded from, whose run holds its evaluation JSONs and summary (default
    ``folder``); ``facts``: ``num_codes`` / ``grid`` / ``parameters`` of the loaded model; ``repo_id``: the name the
    loading lines use (default ``org/name``).
    """
    folder = Path(folder)
    meta = _read_json(folder / CONFIG_FILE)
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise SemtokError(
            f"'{folder / CONFIG_FILE}' is not a semtok model config (needs 'kind' and 'config')"
        )
    kind, config = meta["kind"], meta.get("config") if isinstance(meta.get("config"), dict) else {}
    info = meta.get("info") if isinstance(meta.get("info"), dict) else {}
    source_dir = Path(source or folder)
    summary_path = source_dir.parent / "summary.json"
    summary = _read_json(summary_path) if source_dir.name in RUN_FOLDERS and summary_path.is_file() else None
    what = "image tokenizer" if kind in TOKENIZER_KINDS else _KINDS.get(kind, ("model", "", []))[0]
    repo_id = repo_id or "org/name"
    lines = [
        *_front_matter(kind, config, info),
        "",
        f"# {repo_id if repo_id != 'org/name' else folder.name}",
        "",
        f"A semtok {what} (kind `{kind}`, semtok {meta.get('semtok_version', '?')}), made with semtok, the "
        "library of the paper *Image Understanding Makes for A Good Tokenizer for Image Generation* (NeurIPS 2024).",
        "",
        "## Architecture",
        "",
        *_architecture(kind, config, facts or {}),
        "",
        "## Training",
        "",
        *_training_section(info, summary if isinstance(summary, dict) else None),
        "",
        "## Evaluation",
        "",
        *_metrics_section(evaluation_files(folder, source_dir)),
        "",
        "## How to load",
        "",
        *_loading(kind, repo_id),
        "",
        "## Config",
        "",
        "```json",
        json.dumps(config, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_model_card(
    folder: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    facts: dict[str, Any] | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write :func:`model_card` to ``folder/README.md`` (atomically); returns its path."""
    path = Path(folder) / CARD_FILE
    text = model_card(folder, source=source, facts=facts, repo_id=repo_id)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
