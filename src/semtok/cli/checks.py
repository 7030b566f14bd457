"""Checks of a verb's paths and options, run before any work starts.

Each check raises a one-line :class:`~semtok.errors.SemtokError` that names the flag, the value and what was
expected (``main`` prints it as ``semtok: error: ...`` and exits with code 2). The checks only look at the file
system and at small JSON files (no model is loaded, no data set read), so a bad command fails at once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from semtok.errors import SemtokError
from semtok.hub import CONFIG_FILE, WEIGHTS_FILE


def positive_int(value: int | None, flag: str, what: str = "an int >= 1") -> None:
    """``value`` (None = not given, allowed) must be an int >= 1."""
    if value is not None and value < 1:
        raise SemtokError(f"{flag}: expected {what}, got {value}")


def non_negative_int(value: int | None, flag: str) -> None:
    """``value`` (None = not given, allowed) must be an int >= 0."""
    if value is not None and value < 0:
        raise SemtokError(f"{flag}: expected an int >= 0, got {value}")


def input_file(path: str | None, flag: str, what: str = "file") -> Path | None:
    """An existing file (None = not given, allowed)."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.exists():
        raise SemtokError(f"{flag} '{path}': {what} does not exist")
    if not path.is_file():
        raise SemtokError(f"{flag} '{path}' is a folder, expected a {what}")
    return path


def _check_parents(path: Path, flag: str) -> None:
    """No existing ancestor of ``path`` may be a file (the output could not be created under it)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SemtokError(
                    f"{flag} '{path}': '{parent}' is a file, so nothing can be written under it"
                )
            return


def output_file(
    path: str | Path | None, flag: str, suffixes: Sequence[str] | None = None, expected: str | None = None
) -> Path | None:
    """A file to write (None = not given, allowed): not an existing folder, no ancestor a file, and with one of
    ``suffixes`` (lower-case, with the dot) when given; ``expected`` describes them in the message."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if suffixes is not None and path.suffix.lower() not in suffixes:
        expected = expected or f"a file name ending in {' or '.join(suffixes)}"
        raise SemtokError(f"{flag} '{path}': expected {expected}")
    if path.is_dir():
        raise SemtokError(f"{flag} '{path}' is a folder, expected a file name")
    _check_parents(path, flag)
    return path


def output_dir(path: str | Path | None, flag: str) -> Path | None:
    """A folder to write into (None = not given, allowed): not an existing file, no ancestor a file."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise SemtokError(f"{flag} '{path}' is a file, expected a folder (existing or new)")
    _check_parents(path, flag)
    return path


def image_suffixes() -> tuple[str, ...]:
    """File name endings PIL can write (.png, .jpg, ...), lower-case with the dot."""
    from PIL import Image

    Image.init()
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE))


def data_source(spec: str | None, flag: str = "--data") -> None:
    """A data set: 'mnist5k' or an existing image folder (None = the run's own, allowed)."""
    if spec is None or str(spec).lower() in ("mnist5k", "mnist5k-captioned"):
        return
    if str(spec).endswith(".tar"):  # webdataset shards: a pattern matching nothing is an error naming it
        from semtok.data.shard_files import resolve_shards

        resolve_shards(spec)
        return
    path = Path(spec).expanduser()
    if not path.exists():
        raise SemtokError(f"{flag} '{spec}': expected 'mnist5k' or an existing image folder")
    if not path.is_dir():
        raise SemtokError(f"{flag} '{spec}' is a file, expected 'mnist5k' or an image folder")


# semtok.data.build.SPLITS / LABEL_MODES, spelled out here so that `semtok --help` does not import torch.
SPLITS = ("train", "val", "all")
LABEL_MODES = ("auto", "folders", "none")


def add_data_options(parser: argparse.ArgumentParser, split: str | None) -> None:
    """``--labels`` (how an image folder's labels are read) and, unless ``split`` is None, ``--split`` (default
    ``split``) of the verbs that read a data set."""
    if split is not None:
        parser.add_argument(
            "--split",
            default=split,
            choices=SPLITS,
            help=f"train, val or all (every image of the data set; default {split})",
        )
    parser.add_argument(
        "--labels",
        default=None,
        choices=LABEL_MODES,
        help="image folders: auto (class subfolders make it labelled; default, or the run's data.labels), "
        "folders (class subfolders required) or none (every image under it, at any depth, unlabelled)",
    )


def data_labels(args: argparse.Namespace, run: str | Path | None = None) -> str:
    """The ``--labels`` of a verb: as given, else the run's ``data.labels`` when it reads the run's own data set
    (no ``--data``), else "auto"."""
    if args.labels is not None:
        return args.labels
    if run is not None and getattr(args, "data", None) is None:
        from semtok.config import run_labels

        return run_labels(run)
    return "auto"


def model_folder(
    path: str | Path,
    flag: str,
    what: str,
    subdir: str | Sequence[str],
    kind: str | Sequence[str] | None = None,
) -> Path:
    """A run folder holding ``subdir/`` (or one of several) or a model folder itself, with a readable
    ``config.json`` (of ``kind``, or one of several, when given) and a ``model.safetensors``; returns the model
    folder.

    ``what`` names the model in messages ("tokenizer", "AR model", "judge"); ``flag`` the option ("" for the
    positional PATH).
    """
    subdirs = [subdir] if isinstance(subdir, str) else list(subdir)
    kinds = None if kind is None else [kind] if isinstance(kind, str) else list(kind)
    given = Path(path).expanduser()
    a_what = f"{'an' if what[0] in 'AEIOUaeiou' else 'a'} {what}"
    label = f"{flag} '{given}'" if flag else f"'{given}'"
    if not given.exists():
        raise SemtokError(f"{label} does not exist: expected a run folder or {a_what} folder")
    if not given.is_dir():
        raise SemtokError(f"{label} is a file, expected a run folder or {a_what} folder")
    inner = [given / name for name in subdirs if (given / name / CONFIG_FILE).is_file()]
    folder = inner[0] if inner else given
    config = folder / CONFIG_FILE
    if not config.is_file():
        run_configs = " or ".join(f"{name}/{CONFIG_FILE}" for name in subdirs)
        raise SemtokError(f"{label} holds no {what} (no {CONFIG_FILE}, no {run_configs})")
    try:
        meta = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise SemtokError(f"{label}: '{config}' is not valid JSON ({type(error).__name__})") from None
    found = meta.get("kind") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or (kinds is not None and found not in kinds):
        expected = " or ".join(repr(k) for k in kinds or [])
        raise SemtokError(f"{label}: '{config}' describes a {found!r}, expected {a_what} (kind {expected})")
    if not (folder / WEIGHTS_FILE).is_file():
        raise SemtokError(f"{label}: '{folder}' has no {WEIGHTS_FILE} (an unfinished run?)")
    return folder


def tokenizer_folder(path: str | Path | None, flag: str = "") -> Path | None:
    """A run folder or tokenizer folder holding a tokenizer (None = not given, allowed)."""
    return None if path is None else model_folder(path, flag, "tokenizer", "tokenizer")


# The kinds of proposal network (config.json "kind", also the model's sub-folder in a run folder): AR, masked.
GENERATOR_KINDS = ("ar", "nar")


def generator_folder(path: str | Path, flag: str = "") -> Path:
    """A proposal network's model folder: an AR or masked run folder (holding ``ar/`` or ``nar/``) or a model folder
    of kind ``ar`` or ``nar``, with its weights."""
    return model_folder(path, flag, "AR or masked model", GENERATOR_KINDS, kind=GENERATOR_KINDS)


def generator_kind(path: str | Path) -> str | None:
    """``"ar"`` or ``"nar"`` when ``path`` is a run folder holding ``ar/`` or ``nar/`` or a model folder of that kind,
    else None (never raises: a quick look at ``config.json`` only)."""
    path = Path(path).expanduser()
    for config in [path / kind / CONFIG_FILE for kind in GENERATOR_KINDS] + [path / CONFIG_FILE]:
        if not config.is_file():
            continue
        try:
            kind = json.loads(config.read_text()).get("kind")
        except (ValueError, AttributeError, OSError):
            return None
        return kind if kind in GENERATOR_KINDS else None
    return None


def judge_folder(path: str | Path | None, flag: str = "--judge") -> Path | None:
    """A judge run folder or judge folder holding a trained judge (None = not given, allowed)."""
    return None if path is None else model_folder(path, flag, "judge", "judge", kind="judge")


def token_output(name: str, flag: str = "--out") -> None:
    """The output name of ``semtok tokenize``: none of NAME.npy, NAME.labels.npy, NAME.json may be a folder."""
    from semtok.data.token_file import token_paths

    for path in token_paths(name):
        output_file(path, flag)


# The sampling flags of `sample` and `evaluate --generation`: argparse dest -> (flag, default). The defaults are
# SamplingConfig's (the paper's; tests check they agree); the masked-only ones apply to masked (nar) models.
SAMPLING_FLAGS: dict[str, tuple[str, object]] = {
    "cfg": ("--cfg", 1.75),
    "temperature": ("--temperature", 1.0),
    "top_k": ("--top-k", 600),
    "top_p": ("--top-p", 0.92),
    "steps": ("--steps", 12),
    "schedule": ("--schedule", "cosine"),
    "choice_temperature": ("--choice-temperature", 4.5),
    "cfg_ramp": ("--cfg-ramp", False),
}
MASKED_ONLY = ("steps", "schedule", "choice_temperature", "cfg_ramp")
# semtok.generators.sampling.MASK_SCHEDULE_NAMES, spelled out here so that `semtok --help` does not import torch.
MASK_SCHEDULES = ("cosine", "arccos", "linear")


def add_sampling_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The sampling flags of `sample` and `evaluate --generation` (the paper's defaults)."""
    default = {dest: value for dest, (_, value) in SAMPLING_FLAGS.items()}
    parser.add_argument(
        "--cfg", type=float, default=default["cfg"], help="classifier-free guidance scale (1 = off)"
    )
    parser.add_argument(
        "--temperature", type=float, default=default["temperature"], help="0 = greedy (default 1)"
    )
    parser.add_argument("--top-k", type=int, default=default["top_k"], help="0 = off (default 600)")
    parser.add_argument("--top-p", type=float, default=default["top_p"], help="1 = off (default 0.92)")
    parser.add_argument(
        "--steps",
        type=int,
        default=default["steps"],
        help="masked models: parallel decoding steps (default 12)",
    )
    parser.add_argument(
        "--schedule",
        default=default["schedule"],
        choices=MASK_SCHEDULES,
        help="masked models: the share of tokens still masked after each step (default cosine)",
    )
    parser.add_argument(
        "--choice-temperature",
        type=float,
        default=default["choice_temperature"],
        help="masked models: Gumbel noise on the confidences, annealed to 0 over the steps (default 4.5)",
    )
    parser.add_argument(
        "--cfg-ramp",
        action="store_true",
        help="masked models: the guidance scale ramps linearly from 1 to --cfg over the steps",
    )


def sampling_options(args: argparse.Namespace, kind: str | None, path: str | Path | None = None) -> None:
    """The sampling flags (:func:`add_sampling_options`) are in range and fit the model ``kind`` at ``path``:
    ``"ar"`` refuses a masked-only flag set away from its default (and ``"nar"`` refuses ``--no-cache``); None
    (no model samples: tokenizer evaluation) refuses any sampling flag set away from its default."""
    if kind is None:
        for dest, (flag, default) in SAMPLING_FLAGS.items():
            if getattr(args, dest) != default:
                raise SemtokError(
                    f"{flag} is a sampling setting: it applies to generation metrics (add --generation)"
                )
        return
    if args.temperature < 0:
        raise SemtokError(f"--temperature {args.temperature}: expected a float >= 0 (0 = greedy)")
    if args.top_k < 0:
        raise SemtokError(f"--top-k {args.top_k}: expected an int >= 0 (0 = off)")
    if not 0.0 < args.top_p <= 1.0:
        raise SemtokError(f"--top-p {args.top_p}: expected a value in (0, 1] (1 = off)")
    if args.cfg < 0:
        raise SemtokError(f"--cfg {args.cfg}: expected a guidance scale >= 0 (1 = off)")
    if args.steps < 1:
        raise SemtokError(f"--steps {args.steps}: expected a number of masked decoding steps >= 1")
    if args.schedule not in MASK_SCHEDULES:
        raise SemtokError(f"--schedule {args.schedule!r}: expected one of {', '.join(MASK_SCHEDULES)}")
    if args.choice_temperature < 0:
        raise SemtokError(
            f"--choice-temperature {args.choice_temperature}: expected a float >= 0 (0 = no noise)"
        )
    where = f"'{path}'" if path is not None else "PATH"
    if kind == "ar":
        for dest in MASKED_ONLY:
            flag, default = SAMPLING_FLAGS[dest]
            if getattr(args, dest) != default:
                raise SemtokError(f"{flag} applies to masked (nar) models, but {where} holds an AR model")
    elif getattr(args, "no_cache", False):
        raise SemtokError(f"--no-cache applies to AR models (KV cache), but {where} holds a masked model")


def sampling_fields(args: argparse.Namespace) -> dict[str, object]:
    """The keyword arguments of ``SamplingConfig`` for the sampling flags (every field, for either family)."""
    return {
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "cfg_scale": args.cfg,
        "use_cache": not getattr(args, "no_cache", False),
        "steps": args.steps,
        "schedule": args.schedule,
        "choice_temperature": args.choice_temperature,
        "cfg_ramp": args.cfg_ramp,
    }


def prompt_list(prompts: list[str] | None, prompts_file: str | None) -> list[str] | None:
    """The prompts of ``--prompt`` (repeated) or ``--prompts FILE`` (one per line, blank lines skipped); None when
    neither was given."""
    if prompts_file is None:
        return prompts
    path = input_file(prompts_file, "--prompts", "prompts file")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError:
        raise SemtokError(
            f"--prompts '{prompts_file}': expected a UTF-8 text file, one prompt per line"
        ) from None
    lines = [line for line in lines if line]
    if not lines:
        raise SemtokError(f"--prompts '{prompts_file}': no prompts in the file (expected one per line)")
    return lines
