"""`semtok <verb>`: train, build, evaluate, tokenize, demo. Errors print one line and exit with code 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semtok.errors import SemtokError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag on one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"semtok: error: {message} (see `{self.prog} --help`)\n")


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="semtok", description="Image tokenizers from image-understanding models.")
    parser.add_argument("--version", action="version", version=f"semtok {_version()}")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

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

    evaluate = verbs.add_parser("evaluate", help="codebook usage, perplexity, teacher similarity on a split")
    evaluate.add_argument("path", help="run folder or tokenizer folder")
    evaluate.add_argument(
        "--data", default=None, help="'mnist5k' or an image folder (default: the run's data)"
    )
    evaluate.add_argument("--split", default="val", choices=["train", "val"])
    evaluate.add_argument("--batch-size", type=int, default=128)
    evaluate.add_argument("--teacher-weights", help="local teacher weights file")
    evaluate.add_argument("--no-fid", action="store_true", help="skip rFID (the slowest metric on a CPU)")
    evaluate.add_argument("--inception-weights", help="pt_inception-2015-12-05 weights file for FID")
    evaluate.add_argument("--lpips-weights", help="VGG16 backbone weights file for LPIPS")
    evaluate.add_argument("--out", help="JSON file (default: eval.json beside the tokenizer)")
    evaluate.add_argument("--no-progress", action="store_true")

    tokenize = verbs.add_parser("tokenize", help="token ids of a data set to .npy + JSON manifest")
    tokenize.add_argument("path", help="run folder or tokenizer folder")
    tokenize.add_argument("--data", required=True, help="'mnist5k' or an image folder")
    tokenize.add_argument("--split", default="train", choices=["train", "val"])
    tokenize.add_argument("--batch-size", type=int, default=128)
    tokenize.add_argument(
        "--out", required=True, help="output name: writes NAME.npy, NAME.labels.npy, NAME.json"
    )
    tokenize.add_argument("--no-progress", action="store_true")

    reconstruct = verbs.add_parser(
        "reconstruct", help="write originals beside their reconstructions as a grid"
    )
    reconstruct.add_argument("path", help="run folder or tokenizer folder (with a pixel decoder)")
    reconstruct.add_argument(
        "--data", default=None, help="'mnist5k' or an image folder (default: the run's data)"
    )
    reconstruct.add_argument("--split", default="val", choices=["train", "val"])
    reconstruct.add_argument("--n", type=int, default=32, help="number of images (default 32)")
    reconstruct.add_argument("--out", required=True, help="image file, e.g. grid.png")

    demo = verbs.add_parser(
        "demo", help="tokenizer -> pixel decoder -> evaluation on the embedded default (MNIST-5k)"
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    demo.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    demo.add_argument("--no-progress", action="store_true")
    return parser


def _version() -> str:
    from semtok import __version__

    return __version__


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
    from semtok.training.cluster import ClusterRunConfig, build_cluster_tokenizer

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


def _run_data(path: str) -> str:
    """The data set a run was trained on (from its config.yaml), else the embedded default."""
    import yaml

    config_path = Path(path) / "config.yaml"
    if config_path.exists():
        return yaml.safe_load(config_path.read_text()).get("data", {}).get("dataset", "mnist5k")
    return "mnist5k"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from semtok.evaluate import evaluate_tokenizer, format_table, resolve_tokenizer_dir, write_json

    data = args.data or _run_data(args.path)
    results = evaluate_tokenizer(
        args.path,
        data,
        args.split,
        args.batch_size,
        args.teacher_weights,
        progress=not args.no_progress,
        fid=not args.no_fid,
        inception_weights=args.inception_weights,
        lpips_weights=args.lpips_weights,
    )
    out = Path(args.out) if args.out else resolve_tokenizer_dir(args.path).parent / f"eval_{args.split}.json"
    print(format_table(results))
    print(f"results: {write_json(results, out)}")
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    import torch

    from semtok.config import to_dict
    from semtok.data import build_dataset
    from semtok.data.token_file import write_token_file
    from semtok.evaluate import iterate_batches, resolve_tokenizer_dir
    from semtok.tokenizers.base import Tokenizer

    tokenizer_dir = resolve_tokenizer_dir(args.path)
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    dataset = build_dataset(args.data, args.split, tokenizer.config.image_size, augment="none")
    ids, labels = [], []
    for images, batch_labels in iterate_batches(dataset, args.batch_size, not args.no_progress, "tokenize"):
        ids.append(tokenizer.encode(images))
        labels.append(batch_labels)
    meta = {
        "tokenizer": {
            "path": str(tokenizer_dir.resolve()),
            "kind": tokenizer.kind,
            "config": to_dict(tokenizer.config),
        },
        "data": {
            "dataset": args.data,
            "split": args.split,
            "image_size": tokenizer.config.image_size,
            "augment": "none",
        },
        "num_classes": getattr(dataset, "num_classes", 0),
        "class_names": list(getattr(dataset, "class_names", [])),
        "skipped_files": list(getattr(dataset, "skipped_files", [])),
    }
    manifest = write_token_file(args.out, torch.cat(ids), torch.cat(labels), tokenizer.num_codes, meta)
    print(f"tokens: {torch.cat(ids).shape[0]} images x {list(tokenizer.grid_size)} -> {manifest}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Embedded default end to end: VQ-KD tokenizer -> its pixel decoder -> evaluation and a reconstruction grid."""
    import torch

    from semtok.config import load_config
    from semtok.data import build_dataset
    from semtok.evaluate import evaluate_tokenizer, format_table, write_json
    from semtok.tokenizers.base import Tokenizer
    from semtok.training.checkpoint import latest_checkpoint
    from semtok.training.pixel import DecoderRunConfig, train_pixel
    from semtok.training.vqkd import VQKDRunConfig, train_vqkd
    from semtok.visualize import reconstruction_grid, save_grid

    out = Path(args.out)
    steps = [f"train.steps={args.steps}"] if args.steps else []
    progress = not args.no_progress
    stages = (
        (
            "vqkd",
            lambda resume: train_vqkd(
                load_config(VQKDRunConfig, "vqkd-mnist", steps), out / "vqkd", resume, progress
            ),
        ),
        (
            "decoder",
            lambda resume: train_pixel(
                "decoder",
                load_config(DecoderRunConfig, "decoder-vqkd-mnist", [f"tokenizer={out / 'vqkd'}", *steps]),
                out / "decoder",
                resume,
                progress,
            ),
        ),
    )
    for name, train in stages:
        run = out / name
        if (run / "tokenizer" / "model.safetensors").exists():
            print(f"{name}: already trained in {run} (reused)")
            continue
        resume = latest_checkpoint(run) is not None
        print(f"{name}: {'continuing' if resume else 'training'} in {run}")
        train(resume)

    results = evaluate_tokenizer(out / "decoder", "mnist5k", "val", progress=progress)
    print(format_table(results))
    write_json(results, out / "eval_val.json")
    tokenizer = Tokenizer.from_pretrained(out / "decoder" / "tokenizer")
    val = build_dataset("mnist5k", "val", tokenizer.config.image_size)
    images = torch.stack([val[i][0] for i in range(0, len(val), len(val) // 32)][:32])
    grid = save_grid(reconstruction_grid(tokenizer, images), out / "reconstructions.png")
    print(f"demo outputs: {out.resolve()}")
    print(f"  tokenizer (VQ-KD + pixel decoder): {(out / 'decoder' / 'tokenizer').resolve()}")
    print(f"  evaluation:      {(out / 'eval_val.json').resolve()}")
    print(f"  reconstructions: {grid.resolve()}  (rows: originals, then their reconstructions)")
    print(f"  TensorBoard:     tensorboard --logdir {out.resolve()}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from semtok.data import build_dataset
    from semtok.evaluate import resolve_tokenizer_dir
    from semtok.tokenizers.base import Tokenizer
    from semtok.visualize import reconstruction_grid, save_grid

    if args.n <= 0:
        raise SemtokError(f"--n: expected a positive number of images, got {args.n}")
    tokenizer = Tokenizer.from_pretrained(resolve_tokenizer_dir(args.path))
    dataset = build_dataset(args.data or _run_data(args.path), args.split, tokenizer.config.image_size)
    images = torch.stack([dataset[i][0] for i in range(min(args.n, len(dataset)))])
    print(f"reconstructions: {save_grid(reconstruction_grid(tokenizer, images), args.out)}")
    return 0


COMMANDS = {
    "reconstruct": cmd_reconstruct,
    "evaluate": cmd_evaluate,
    "tokenize": cmd_tokenize,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.verb == "train":
            if args.stage == "cluster":
                return cmd_train_cluster(args)
            return cmd_train_vqkd(args) if args.stage == "vqkd" else cmd_train_pixel(args)
        if args.verb == "build":
            return cmd_build_cluster(args)
        return COMMANDS[args.verb](args)
    except SemtokError as error:
        print(f"semtok: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semtok: interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
