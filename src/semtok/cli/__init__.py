"""`semtok <verb>`: train, build, evaluate, tokenize, demo. Errors print one line and exit with code 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semtok.cli import checks
from semtok.errors import SemtokError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag on one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"semtok: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="semtok", description="Image tokenizers from image-understanding models.")
    parser.add_argument("--version", action="version", version=f"semtok {_version()}")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    from semtok.cli.train import add_train_parsers

    add_train_parsers(verbs)
    bench = verbs.add_parser(
        "bench", help="the paper's comparison at small scale: every tokenizer + the same AR model, a report"
    )
    bench.add_argument("--suite", default="mnist", choices=["mnist", "quick"], help="budgets (default mnist)")
    bench.add_argument(
        "--quick", action="store_true", help="same as --suite quick (minutes, smoke-test budgets)"
    )
    bench.add_argument("--rows", nargs="+", help="only these rows (default: all)")
    bench.add_argument("--out", default=None, help="output folder (default runs/bench/suite-SUITE)")
    bench.add_argument("--progress", action="store_true", help="progress bars for every stage")

    sample = verbs.add_parser(
        "sample", help="sample images from a trained AR model, decoded by its tokenizer"
    )
    sample.add_argument("path", help="AR run folder or AR model folder")
    which = sample.add_mutually_exclusive_group()
    which.add_argument("--class", dest="label", type=int, default=None, help="class index to sample")
    which.add_argument(
        "--all-classes", action="store_true", help="a grid with one row of --n samples per class"
    )
    sample.add_argument(
        "--n", type=int, default=16, help="samples (per class with --all-classes; default 16)"
    )
    sample.add_argument("--cfg", type=float, default=1.75, help="classifier-free guidance scale (1 = off)")
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--top-k", type=int, default=600, help="0 = off (default 600)")
    sample.add_argument("--top-p", type=float, default=0.92, help="1 = off (default 0.92)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--batch-size", type=int, default=64)
    sample.add_argument("--no-cache", action="store_true", help="recompute the prefix every step (slow)")
    sample.add_argument("--tokenizer", help="decode with this tokenizer folder (default: the recorded one)")
    sample.add_argument("--images", help="also write every sample as its own PNG into this folder")
    sample.add_argument("--out", required=True, help="grid image (.png; provenance inside and in .json)")
    sample.add_argument("--no-progress", action="store_true")

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
    evaluate.add_argument("--out", help="JSON file (default: eval_SPLIT.json beside the tokenizer)")
    evaluate.add_argument("--no-progress", action="store_true")
    generation = evaluate.add_argument_group(
        "generation (PATH is an AR run)",
        "gFID, precision/recall (k=3), Inception Score (with --inception-weights) and class accuracy (with "
        "--judge) of one sample per label of --split",
    )
    generation.add_argument("--generation", action="store_true", help="evaluate the samples of an AR model")
    generation.add_argument("--judge", help="judge classifier folder from `semtok train judge`")
    generation.add_argument("--seed", type=int, default=0)
    generation.add_argument("--cfg", type=float, default=1.75, help="guidance scale (1 = off)")
    generation.add_argument("--temperature", type=float, default=1.0)
    generation.add_argument("--top-k", type=int, default=600)
    generation.add_argument("--top-p", type=float, default=0.92)
    generation.add_argument("--samples-out", help="also write a grid of the first 64 samples (.png)")

    probe = verbs.add_parser(
        "probe", help="linear-probe top-1 of a tokenizer's frozen code vectors (train -> val)"
    )
    probe.add_argument("path", help="run folder or tokenizer folder")
    probe.add_argument(
        "--data", default=None, help="'mnist5k' or a labelled image folder (default: the run's data)"
    )
    probe.add_argument("--batch-size", type=int, default=128, help="images per encoding batch")
    probe.add_argument("--max-iter", type=int, default=500, help="L-BFGS iterations per fit (default 500)")
    probe.add_argument("--seed", type=int, default=0, help="seed of the train hold-out split (default 0)")
    probe.add_argument("--out", help="JSON file (default: probe_val.json beside the tokenizer)")
    probe.add_argument("--no-progress", action="store_true")

    tokenize = verbs.add_parser("tokenize", help="token ids of a data set to .npy + JSON manifest")
    tokenize.add_argument("path", help="run folder or tokenizer folder")
    tokenize.add_argument("--data", required=True, help="'mnist5k' or an image folder")
    tokenize.add_argument("--split", default="train", choices=["train", "val"])
    tokenize.add_argument("--batch-size", type=int, default=128)
    tokenize.add_argument(
        "--out", required=True, help="output name: writes NAME.npy, NAME.labels.npy, NAME.json"
    )
    tokenize.add_argument(
        "--views", type=int, default=1, help="augmented views per image (needs --augment; default 1)"
    )
    tokenize.add_argument("--augment", default="none", choices=["none", "flip", "crop_flip"])
    tokenize.add_argument(
        "--crop-scale",
        type=float,
        nargs=2,
        default=[0.08, 1.0],
        metavar=("MIN", "MAX"),
        help="crop_flip area range",
    )
    tokenize.add_argument("--seed", type=int, default=0, help="seed of the augmentation")
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
        "demo",
        help="tokenizer -> pixel decoder -> AR -> samples and report on the embedded default (MNIST-5k)",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    demo.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    demo.add_argument(
        "--no-fid", action="store_true", help="skip rFID / gFID / precision-recall (fast check)"
    )
    demo.add_argument("--no-progress", action="store_true")
    return parser


def _version() -> str:
    from semtok import __version__

    return __version__


def _run_data(path: str) -> str:
    """The data set a run was trained on (from its config.yaml), else the embedded default."""
    import yaml

    config_path = Path(path) / "config.yaml"
    if config_path.exists():
        return yaml.safe_load(config_path.read_text()).get("data", {}).get("dataset", "mnist5k")
    return "mnist5k"


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.generation:
        return _evaluate_generation(args)
    for flag, value in (("--judge", args.judge), ("--samples-out", args.samples_out)):
        if value is not None:
            raise SemtokError(f"{flag} applies to generation metrics: add --generation (PATH an AR run)")
    if (Path(args.path) / "ar" / "config.json").is_file() and not (Path(args.path) / "tokenizer").is_dir():
        raise SemtokError(f"'{args.path}' is an AR run: add --generation for its generation metrics")
    checks.tokenizer_folder(args.path)
    checks.data_source(args.data)
    checks.positive_int(args.batch_size, "--batch-size")
    checks.input_file(args.teacher_weights, "--teacher-weights", "weights file")
    checks.input_file(args.inception_weights, "--inception-weights", "weights file")
    checks.input_file(args.lpips_weights, "--lpips-weights", "weights file")
    checks.output_file(args.out, "--out")

    from semtok.evaluation.common import format_table, write_json
    from semtok.evaluation.tokenizer import evaluate_tokenizer
    from semtok.hub.pretrained import resolve_model_dir

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
    out = (
        Path(args.out)
        if args.out
        else resolve_model_dir(args.path, "tokenizer").parent / f"eval_{args.split}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    print(format_table(results))
    print(f"results: {write_json(results, out)}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    checks.tokenizer_folder(args.path)
    checks.data_source(args.data)
    checks.positive_int(args.batch_size, "--batch-size")
    checks.positive_int(args.max_iter, "--max-iter")
    checks.output_file(args.out, "--out")

    from semtok.evaluation.common import format_table, write_json
    from semtok.evaluation.probe import linear_probe
    from semtok.hub.pretrained import resolve_model_dir

    data = args.data or _run_data(args.path)
    results = linear_probe(
        args.path, data, args.batch_size, args.max_iter, args.seed, progress=not args.no_progress
    )
    out = Path(args.out) if args.out else resolve_model_dir(args.path, "tokenizer").parent / "probe_val.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(format_table(results))
    print(f"results: {write_json(results, out)}")
    return 0


def _evaluate_generation(args: argparse.Namespace) -> int:
    for flag, value in (("--teacher-weights", args.teacher_weights), ("--lpips-weights", args.lpips_weights)):
        if value is not None:
            raise SemtokError(f"{flag} applies to tokenizer evaluation, not to --generation")
    checks.ar_folder(args.path)
    checks.judge_folder(args.judge)
    checks.data_source(args.data)
    checks.positive_int(args.batch_size, "--batch-size")
    checks.input_file(args.inception_weights, "--inception-weights", "weights file")
    checks.output_file(args.samples_out, "--samples-out", (".png",))
    checks.output_file(args.out, "--out")

    from semtok.evaluation.common import format_table, write_json
    from semtok.evaluation.generation import evaluate_generation
    from semtok.generators.sampling import SamplingConfig
    from semtok.hub.pretrained import resolve_model_dir

    sampling = SamplingConfig(args.temperature, args.top_k, args.top_p, args.cfg)
    results = evaluate_generation(
        args.path,
        args.data,
        args.split,
        sampling,
        args.seed,
        args.judge,
        args.inception_weights,
        args.batch_size,
        progress=not args.no_progress,
        samples_out=args.samples_out,
    )
    default = resolve_model_dir(args.path, "ar").parent / f"eval_generation_{args.split}_seed{args.seed}.json"
    out = Path(args.out) if args.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    print(format_table({k: v for k, v in results.items() if not isinstance(v, dict)}))
    print(f"results: {write_json(results, out)}")
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    checks.tokenizer_folder(args.path)
    checks.data_source(args.data)
    checks.positive_int(args.batch_size, "--batch-size")
    checks.positive_int(args.views, "--views", "a positive number of views")
    if args.views > 1 and (args.augment == "none" or args.split != "train"):
        raise SemtokError(
            f"--views {args.views}: several views need --augment flip|crop_flip and --split train"
        )
    low, high = args.crop_scale
    if not 0 < low <= high <= 1:
        raise SemtokError(f"--crop-scale {low} {high}: expected 0 < MIN <= MAX <= 1")
    checks.token_output(args.out)

    from semtok.data.token_file import read_token_file
    from semtok.pipelines.tokenize import tokenize_dataset

    manifest = tokenize_dataset(
        args.path,
        args.data,
        args.split,
        args.out,
        batch_size=args.batch_size,
        views=args.views,
        augment=args.augment,
        crop_scale=tuple(args.crop_scale),
        seed=args.seed,
        progress=not args.no_progress,
    )
    ids, _, _ = read_token_file(manifest)
    print(f"tokens: {ids.shape[0]} rows x {list(ids.shape[1:])} ({args.views} view(s)) -> {manifest}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    checks.ar_folder(args.path)
    checks.tokenizer_folder(args.tokenizer, "--tokenizer")
    checks.positive_int(args.n, "--n", "a positive number of samples")
    checks.positive_int(args.batch_size, "--batch-size")
    checks.non_negative_int(args.label, "--class")
    checks.output_file(args.out, "--out", (".png",))
    checks.output_dir(args.images, "--images")

    import torch

    from semtok.generators.sampler import Sampler
    from semtok.generators.sampling import SamplingConfig
    from semtok.visual.provenance import write_samples

    sampling = SamplingConfig(args.temperature, args.top_k, args.top_p, args.cfg, not args.no_cache)
    sampler = Sampler(args.path, args.tokenizer)
    if args.all_classes:
        classes = range(max(sampler.num_classes, 1))
        labels = torch.tensor([c for c in classes for _ in range(args.n)])
        per_row = args.n
    else:
        label = 0 if args.label is None else args.label
        try:
            sampler.check_class(label)
        except SemtokError:
            raise SemtokError(
                f"--class {label}: this model has classes 0..{sampler.num_classes - 1}"
            ) from None
        labels = torch.full((args.n,), label)
        per_row = min(args.n, 8)
    path = write_samples(
        sampler,
        labels,
        args.out,
        sampling,
        args.seed,
        per_row,
        args.batch_size,
        args.images,
        not args.no_progress,
    )
    print(f"samples: {path} ({len(labels)} images; provenance in {path.with_suffix('.json')})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    suite = "quick" if args.quick else args.suite
    out = args.out or f"runs/bench/suite-{suite}"
    checks.output_dir(out, "--out")
    from semtok.pipelines.suite import ROWS, run_suite

    unknown = [row for row in args.rows or [] if row not in ROWS]
    if unknown:
        raise SemtokError(f"--rows: unknown {unknown} (known: {list(ROWS)})")
    run_suite(suite, out, args.rows, progress=args.progress)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Embedded default end to end: tokenizer -> pixel decoder -> AR -> samples -> metrics -> report.md."""
    checks.output_dir(args.out, "--out")
    checks.positive_int(args.steps, "--steps")

    from semtok.pipelines.demo import run_demo

    run_demo(args.out, args.steps, progress=not args.no_progress, fid=not args.no_fid)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    checks.tokenizer_folder(args.path)
    checks.data_source(args.data)
    checks.positive_int(args.n, "--n", "a positive number of images")
    checks.output_file(args.out, "--out", checks.image_suffixes(), "an image file name (.png, .jpg, ...)")

    import torch

    from semtok.data import build_dataset
    from semtok.hub.pretrained import resolve_model_dir
    from semtok.tokenizers.base import Tokenizer
    from semtok.visual.grids import reconstruction_grid, save_grid

    tokenizer = Tokenizer.from_pretrained(resolve_model_dir(args.path, "tokenizer"))
    dataset = build_dataset(args.data or _run_data(args.path), args.split, tokenizer.config.image_size)
    images = torch.stack([dataset[i][0] for i in range(min(args.n, len(dataset)))])
    print(f"reconstructions: {save_grid(reconstruction_grid(tokenizer, images), args.out)}")
    return 0


COMMANDS = {
    "reconstruct": cmd_reconstruct,
    "evaluate": cmd_evaluate,
    "probe": cmd_probe,
    "tokenize": cmd_tokenize,
    "sample": cmd_sample,
    "bench": cmd_bench,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.verb in ("train", "build"):
            from semtok.cli.train import run_train

            return run_train(args)
        return COMMANDS[args.verb](args)
    except SemtokError as error:
        print(f"semtok: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semtok: interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
