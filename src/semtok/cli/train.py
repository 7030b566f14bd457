"""`semtok train STAGE` and `semtok build cluster`: parsers and commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from semtok.errors import SemtokError


def _add_train_options(parser: argparse.ArgumentParser, default_config: str) -> None:
    parser.add_argument(
        "--config", default=default_config, help=f"named config or YAML file (default {default_config})"
    )
    parser.add_argument("--data", help="'mnist5k' or an image folder (overrides data.dataset)")
    parser.add_argument("--teacher", help="teacher registry name (overrides model.teacher)")
    parser.add_argument("--teacher-weights", help="local teacher weights file (safetensors or state dict)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.steps=100 (repeatable)",
    )
    parser.add_argument("--out", required=True, help="run folder for checkpoints, logs and the tokenizer")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its latest checkpoint"
    )
    parser.add_argument(
        "--stop-at", type=int, metavar="STEP", help="checkpoint and stop after STEP (resume later)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_train_parsers(verbs: argparse._SubParsersAction) -> None:
    from semtok.cli import _Parser

    train = verbs.add_parser("train", help="train a tokenizer")
    stages = train.add_subparsers(dest="stage", required=True, parser_class=_Parser)
    _add_train_options(
        stages.add_parser("vqkd", help="distil a VQ-KD tokenizer from a teacher"), "vqkd-mnist"
    )
    _add_train_options(
        stages.add_parser(
            "cluster", help="learn a Cluster codebook online for a frozen teacher (offline: `build cluster`)"
        ),
        "cluster-online-mnist",
    )
    for kind, text in (
        ("vqgan", "VQGAN baseline (L2 codebook, L1 + perceptual + adaptive GAN)"),
        ("cvq", "CVQ-VAE baseline (cosine codebook, re-seeding of rarely used codes)"),
        ("fsq", "FSQ baseline (finite scalar quantization)"),
    ):
        _add_train_options(stages.add_parser(kind, help=text), f"{kind}-mnist")
    decoder = stages.add_parser(
        "decoder", help="train a pixel decoder for a frozen VQ-KD / Cluster tokenizer"
    )
    _add_train_options(decoder, "decoder-vqkd-mnist")
    decoder.add_argument("--tokenizer", help="the feature tokenizer: a run folder or tokenizer folder")
    _add_train_options(
        stages.add_parser(
            "judge",
            help="train the judge: a classifier of the data set's classes that scores generated samples",
        ),
        "judge-mnist",
    )

    ar = stages.add_parser("ar", help="train a class-conditional AR proposal network on a token file")
    _add_train_options(ar, "ar-mnist")
    ar.add_argument("--tokens", help="train token file from `semtok tokenize` (sets data.tokens)")
    ar.add_argument("--val-tokens", help="val token file: val NLL at the end (sets data.val_tokens)")

    build = verbs.add_parser("build", help="build a tokenizer without gradient training (Cluster: k-means)")
    builders = build.add_subparsers(dest="stage", required=True, parser_class=_Parser)
    cluster = builders.add_parser(
        "cluster", help="frozen teacher + spherical k-means codebook of its patch features"
    )
    cluster.add_argument(
        "--config", default="cluster-mnist", help="named config or YAML file (default cluster-mnist)"
    )
    cluster.add_argument("--data", help="'mnist5k' or an image folder (overrides data.dataset)")
    cluster.add_argument("--teacher", help="teacher registry name (overrides model.teacher)")
    cluster.add_argument("--teacher-weights", help="local teacher weights file (safetensors or state dict)")
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
    cluster.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set build.max_points=100000 (repeatable)",
    )
    cluster.add_argument("--out", required=True, help="output folder: tokenizer/, features.npy, summary.json")
    cluster.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_train_vqkd(args: argparse.Namespace) -> int:
    from semtok.config import load_config
    from semtok.training.vqkd import VQKDRunConfig, train_vqkd

    out = Path(args.out)
    source = _resume_source(args, out)
    overrides = _config_overrides(args)
    config = load_config(VQKDRunConfig, source, overrides, ignore=("kind",))
    summary = train_vqkd(config, out, resume=args.resume, progress=not args.no_progress, stop_at=args.stop_at)
    if summary.get("stopped_at_step") is not None:
        print(f"stopped after step {summary['stopped_at_step']}; continue with --resume --out {out}")
    elif summary:
        print(f"tokenizer: {summary['tokenizer']}")
        print(f"teacher features: {summary['teacher_features']}; skipped files: {summary['skipped_files']}")
    return 0


def cmd_train_cluster(args: argparse.Namespace) -> int:
    from semtok.config import load_config
    from semtok.training.cluster_online import ClusterTrainRunConfig, train_cluster_online

    out = Path(args.out)
    source = _resume_source(args, out)
    config = load_config(ClusterTrainRunConfig, source, _config_overrides(args), ignore=("kind",))
    summary = train_cluster_online(config, out, args.resume, not args.no_progress, args.stop_at)
    if summary.get("stopped_at_step") is not None:
        print(f"stopped after step {summary['stopped_at_step']}; continue with --resume --out {out}")
    elif summary:
        print(f"tokenizer: {summary['tokenizer']}")
        print(f"codes re-seeded: {summary['codes_reseeded_this_session']}")
    return 0


def _resume_source(args: argparse.Namespace, out: Path) -> str:
    """The config to use: the run's own saved config when resuming (checked to be of this stage's kind)."""
    saved = out / "config.yaml"
    if not (args.resume and saved.exists()):
        return args.config
    import yaml

    kind = (yaml.safe_load(saved.read_text()) or {}).get("kind")
    if kind != args.stage:
        raise SemtokError(f"--resume: '{out}' holds a '{kind}' run, not a '{args.stage}' one")
    return str(saved)


def cmd_train_pixel(args: argparse.Namespace) -> int:
    from semtok.config import load_config
    from semtok.training.pixel import RUN_CONFIGS, train_pixel

    out = Path(args.out)
    source = _resume_source(args, out)
    overrides = _config_overrides(args)
    if getattr(args, "tokenizer", None):
        overrides.insert(0, f"tokenizer={args.tokenizer}")
    config = load_config(RUN_CONFIGS[args.stage], source, overrides, ignore=("kind", "perceptual_loss_used"))
    summary = train_pixel(args.stage, config, out, args.resume, not args.no_progress, args.stop_at)
    if summary.get("stopped_at_step") is not None:
        print(f"stopped after step {summary['stopped_at_step']}; continue with --resume --out {out}")
    elif summary:
        print(f"tokenizer: {summary['tokenizer']}")
        print(f"perceptual loss: {summary['perceptual_loss']}; skipped files: {summary['skipped_files']}")
    return 0


def cmd_train_judge(args: argparse.Namespace) -> int:
    from semtok.config import load_config
    from semtok.training.judge import JudgeRunConfig, train_judge

    out = Path(args.out)
    source = _resume_source(args, out)
    config = load_config(JudgeRunConfig, source, _config_overrides(args), ignore=("kind",))
    summary = train_judge(config, out, args.resume, not args.no_progress, args.stop_at)
    if summary.get("stopped_at_step") is not None:
        print(f"stopped after step {summary['stopped_at_step']}; continue with --resume --out {out}")
    elif summary:
        print(f"judge: {summary['judge']}")
        print(
            f"val top-1: {summary['val_top1']:.4f} on {summary['val_images']} images "
            f"({summary['train_seconds_this_session']} s)"
        )
    return 0


def _config_overrides(args: argparse.Namespace) -> list[str]:
    overrides = []
    if args.stage not in ("vqkd", "cluster") and (args.teacher or args.teacher_weights):
        raise SemtokError(
            f"--teacher and --teacher-weights apply to `train vqkd` and `train cluster`, not `train {args.stage}`"
        )
    if args.data:
        overrides.append(f"data.dataset={args.data}")
    if args.teacher:
        overrides.append(f"model.teacher={args.teacher}")
    if args.teacher_weights:
        overrides.append(f"model.teacher_weights={args.teacher_weights}")
    return [*overrides, *args.overrides]


def cmd_build_cluster(args: argparse.Namespace) -> int:
    from semtok.config import load_config
    from semtok.tokenizers.cluster_build import ClusterRunConfig, build_cluster_tokenizer

    overrides = []
    for flag, key in (
        ("data", "data.dataset"),
        ("teacher", "model.teacher"),
        ("teacher_weights", "model.teacher_weights"),
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


def cmd_train_ar(args: argparse.Namespace) -> int:
    from semtok.config import load_config
    from semtok.training.ar import ARRunConfig, train_ar

    out = Path(args.out)
    if args.data or args.teacher or args.teacher_weights:
        raise SemtokError(
            "`train ar` reads token files: use --tokens (and --val-tokens), not --data / --teacher"
        )
    overrides = []
    if args.tokens:
        overrides.append(f"data.tokens={args.tokens}")
    if args.val_tokens:
        overrides.append(f"data.val_tokens={args.val_tokens}")
    source = _resume_source(args, out)
    config = load_config(ARRunConfig, source, [*overrides, *args.overrides], ignore=("kind",))
    summary = train_ar(config, out, args.resume, not args.no_progress, args.stop_at)
    if summary.get("stopped_at_step") is not None:
        print(f"stopped after step {summary['stopped_at_step']}; continue with --resume --out {out}")
    elif summary:
        val = f", val NLL {summary['val_nll']:.4f}" if "val_nll" in summary else ""
        print(f"AR model: {summary['ar']} ({summary['parameters']:,} parameters{val})")
    return 0


def run_train(args: argparse.Namespace) -> int:
    if args.verb == "build":
        return cmd_build_cluster(args)
    if args.stage == "cluster":
        return cmd_train_cluster(args)
    if args.stage == "judge":
        return cmd_train_judge(args)
    if args.stage == "ar":
        return cmd_train_ar(args)
    return cmd_train_vqkd(args) if args.stage == "vqkd" else cmd_train_pixel(args)
