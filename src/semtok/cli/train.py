"""`semtok train STAGE` (one parser per entry of the stage registry) and `semtok build cluster`."""

from __future__ import annotations

import argparse
from pathlib import Path

from semtok.cli import checks
from semtok.errors import SemtokError
from semtok.training.registry import STAGES, StageSpec


def _add_common_options(parser: argparse.ArgumentParser, default_config: str, images: bool = True) -> None:
    """The options every training or build verb takes: config, overrides, output, progress (+ data)."""
    parser.add_argument(
        "--config", default=default_config, help=f"named config or YAML file (default {default_config})"
    )
    if images:
        parser.add_argument("--data", help="'mnist5k' or an image folder (overrides data.dataset)")
        parser.add_argument(
            "--data-labels",
            choices=("auto", "folders", "none"),
            help="image folders: auto, folders (class subfolders required) or none (every image, unlabelled) "
            "(overrides data.labels)",
        )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.steps=100 (repeatable)",
    )
    parser.add_argument("--out", required=True, help="run folder for checkpoints, logs and the model")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_teacher_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", help="teacher registry name (overrides model.teacher.name)")
    parser.add_argument("--teacher-weights", help="local teacher weights file (safetensors or state dict)")


def add_train_parsers(verbs: argparse._SubParsersAction) -> None:
    from semtok.cli import _Parser

    train = verbs.add_parser(
        "train", help="train a stage: a tokenizer, a pixel decoder, the judge, an AR model"
    )
    stages = train.add_subparsers(dest="stage", required=True, parser_class=_Parser)
    for name, spec in STAGES.items():
        parser = stages.add_parser(name, help=spec.help)
        _add_common_options(parser, spec.default_config, images=spec.inputs == "images")
        if spec.inputs == "images":
            _add_teacher_options(parser)
        for option in spec.options:
            parser.add_argument(option.flag, help=f"{option.help} (sets {option.key})")
        parser.add_argument(
            "--resume",
            action="store_true",
            help="continue the run in --out from its latest checkpoint (from step 0 if it has none yet)",
        )
        parser.add_argument(
            "--stop-at", type=int, metavar="STEP", help="checkpoint and stop after STEP (resume later)"
        )

    build = verbs.add_parser("build", help="build a tokenizer without gradient training (Cluster: k-means)")
    builders = build.add_subparsers(dest="stage", required=True, parser_class=_Parser)
    cluster = builders.add_parser(
        "cluster", help="frozen teacher + spherical k-means codebook of its patch features"
    )
    _add_common_options(cluster, "cluster-mnist")
    _add_teacher_options(cluster)
    cluster.add_argument("--codebook-size", type=int, metavar="K", help="number of codes (model.num_codes)")
    cluster.add_argument(
        "--max-images", type=int, metavar="N", help="a seeded random subset of N images (build.max_images)"
    )
    cluster.add_argument("--iters", type=int, help="k-means iterations (model.kmeans_iters)")
    cluster.add_argument("--seed", type=int, help="seed of the subset, k-means and re-seeding (build.seed)")
    cluster.add_argument("--batch-size", type=int, help="images per teacher batch (build.batch_size)")
    cluster.add_argument(
        "--drop-features", action="store_true", help="delete OUT/features.npy after the build"
    )


def _config_source(args: argparse.Namespace, out: Path) -> str:
    """The config to use: the run's own saved config when resuming (checked to be of this stage's kind)."""
    saved = out / "config.yaml"
    if not (args.resume and saved.exists()):
        return args.config
    import yaml

    kind = (yaml.safe_load(saved.read_text()) or {}).get("kind")
    if kind != args.stage:
        raise SemtokError(f"--resume: '{out}' holds a '{kind}' run, not a '{args.stage}' one")
    return str(saved)


def _overrides(args: argparse.Namespace, spec: StageSpec) -> list[str]:
    """``--set`` strings for the flags given: --data, --teacher, --teacher-weights and the stage's own."""
    overrides = []
    for flag, key in (
        ("data", "data.dataset"),
        ("data_labels", "data.labels"),
        ("teacher", "model.teacher.name"),
        ("teacher_weights", "model.teacher.weights"),
    ):
        if getattr(args, flag, None):
            overrides.append(f"{key}={getattr(args, flag)}")
    for option in spec.options:
        value = getattr(args, option.flag.lstrip("-").replace("-", "_"))
        if value:
            overrides.append(f"{option.key}={value}")
    return [*overrides, *args.overrides]


def _check_required(config: object, spec: StageSpec) -> None:
    for option in spec.options:
        if not option.required:
            continue
        value: object = config
        for part in option.key.split("."):
            value = getattr(value, part)
        if not value:
            raise SemtokError(f"{option.flag}: required ({option.help}; or set {option.key} in the config)")


def _check_inputs(args: argparse.Namespace) -> None:
    """The paths a training verb was given exist and hold what they should, before anything is built."""
    checks.data_source(getattr(args, "data", None))
    checks.input_file(getattr(args, "teacher_weights", None), "--teacher-weights")
    checks.tokenizer_folder(getattr(args, "tokenizer", None), "--tokenizer")
    manifests = {}
    for flag in ("tokens", "val_tokens"):
        if getattr(args, flag, None):
            from semtok.data.token_file import read_manifest

            try:
                manifests[flag] = read_manifest(getattr(args, flag))
            except SemtokError as error:
                raise SemtokError(f"--{flag.replace('_', '-')}: {error}") from None
    if len(manifests) == 2:
        train, val = ((manifest["num_codes"], list(manifest["grid"])) for manifest in manifests.values())
        if train != val:
            raise SemtokError(
                f"--val-tokens '{args.val_tokens}': made by another tokenizer than --tokens ({val[0]} codes, grid "
                f"{val[1]}; expected {train[0]} codes, grid {train[1]})"
            )


def cmd_train(args: argparse.Namespace) -> int:
    from semtok.config import load_config
    from semtok.training.engine import Engine
    from semtok.training.registry import build_stage, config_class

    spec = STAGES[args.stage]
    if not spec.teacher and (getattr(args, "teacher", None) or getattr(args, "teacher_weights", None)):
        teachers = " and ".join(f"`train {name}`" for name, other in STAGES.items() if other.teacher)
        raise SemtokError(f"--teacher and --teacher-weights apply to {teachers}, not `train {args.stage}`")
    checks.positive_int(args.stop_at, "--stop-at")
    out = checks.output_dir(args.out, "--out")
    _check_inputs(args)
    from semtok.training.checkpoint import latest_checkpoint

    existing = latest_checkpoint(out)
    if existing is not None and not args.resume:
        raise SemtokError(
            f"--out '{out}' already holds a run (checkpoint {existing.name}): pass --resume or another --out"
        )
    source = _config_source(args, out)
    config = load_config(
        config_class(args.stage), source, _overrides(args, spec), ignore=("kind", "perceptual_loss_used")
    )
    _check_required(config, spec)
    stage = build_stage(args.stage, config)
    summary = Engine(stage, out, not args.no_progress).run(args.resume, args.stop_at)
    if summary.get("stopped_at_step") is not None:
        print(f"stopped after step {summary['stopped_at_step']}; continue with --resume --out {out}")
    elif summary:
        print("\n".join(stage.summary_lines(summary)))
    return 0


def cmd_build_cluster(args: argparse.Namespace) -> int:
    from semtok.config import load_config
    from semtok.tokenizers.cluster_build import ClusterRunConfig, build_cluster_tokenizer

    checks.output_dir(args.out, "--out")
    _check_inputs(args)
    checks.non_negative_int(args.iters, "--iters")
    for flag in ("max_images", "batch_size"):  # --codebook-size: checked as model.num_codes
        checks.positive_int(getattr(args, flag), f"--{flag.replace('_', '-')}")
    overrides = []
    for flag, key in (
        ("data", "data.dataset"),
        ("data_labels", "data.labels"),
        ("teacher", "model.teacher.name"),
        ("teacher_weights", "model.teacher.weights"),
        ("codebook_size", "model.num_codes"),
        ("max_images", "build.max_images"),
        ("iters", "model.kmeans_iters"),
        ("seed", "build.seed"),
        ("batch_size", "build.batch_size"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.drop_features:
        overrides.append("build.keep_features=false")
    config = load_config(ClusterRunConfig, args.config, [*overrides, *args.overrides], ignore=("kind",))
    summary = build_cluster_tokenizer(config, args.out, progress=not args.no_progress)
    print(f"tokenizer: {summary['tokenizer']}")
    print(
        f"{summary['vectors']} vectors of {summary['images']} images -> {summary['num_codes']} codes "
        f"({summary['codes_used']} used, {summary['empty_codes_reseeded']} re-seeded) "
        f"in {summary['seconds']['total']} s"
    )
    return 0


def run_train(args: argparse.Namespace) -> int:
    return cmd_build_cluster(args) if args.verb == "build" else cmd_train(args)
