"""The evaluation verbs: `semtok evaluate` (a tokenizer, or generation with --generation) and `semtok probe`."""

from __future__ import annotations

import argparse
from pathlib import Path

from semtok.cli import checks
from semtok.config import run_dataset
from semtok.errors import SemtokError


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    evaluate = verbs.add_parser("evaluate", help="codebook usage, perplexity, teacher similarity on a split")
    evaluate.add_argument(
        "path", help="run folder or tokenizer folder; with --generation an AR or masked run / model folder"
    )
    evaluate.add_argument(
        "--data", default=None, help="'mnist5k' or an image folder (default: the run's data)"
    )
    checks.add_data_options(evaluate, "val")
    evaluate.add_argument("--batch-size", type=int, default=128)
    evaluate.add_argument("--teacher-weights", help="local teacher weights file")
    evaluate.add_argument("--no-fid", action="store_true", help="skip rFID (the slowest metric on a CPU)")
    evaluate.add_argument("--inception-weights", help="pt_inception-2015-12-05 weights file for FID")
    evaluate.add_argument("--lpips-weights", help="VGG16 backbone weights file for LPIPS")
    evaluate.add_argument("--out", help="JSON file (default: eval_SPLIT.json beside the tokenizer)")
    evaluate.add_argument("--no-progress", action="store_true")
    generation = evaluate.add_argument_group(
        "generation (PATH is an AR or masked run)",
        "gFID, precision/recall (k=3), Inception Score (with --inception-weights) and class accuracy (with "
        "--judge) of one sample per label of --split; a text run: one sample per image, prompted with its "
        "caption, FID_T2I, prompt scores (captioned MNIST; digit with --judge) and CLIP score (--clip-weights)",
    )
    generation.add_argument(
        "--generation", action="store_true", help="evaluate the samples of an AR or masked model"
    )
    generation.add_argument("--judge", help="judge classifier folder from `semtok train judge`")
    generation.add_argument("--seed", type=int, default=0)
    checks.add_sampling_options(generation)
    generation.add_argument("--samples-out", help="also write a grid of the first 64 samples (.png)")
    generation.add_argument(
        "--num-samples",
        type=int,
        help="sample for this many evenly spaced labels of --split (default: every one; e.g. 50000 on ImageNet val)",
    )
    generation.add_argument(
        "--reference",
        help="FID reference statistics .npz (mu, sigma: ADM's VIRTUAL_imagenet256_labeled.npz or `semtok stats`)",
    )
    generation.add_argument(
        "--samples-npz",
        help="also write the samples as an ADM sample batch .npz (arr_0 uint8 NHWC, arr_1 labels)",
    )
    generation.add_argument(
        "--clip-weights", help="text runs: open_clip CLIP weights file for the CLIP score"
    )
    generation.add_argument(
        "--clip-model",
        default="ViT-B-16",
        help="its open_clip architecture (OpenAI's file: ViT-B-16-quickgelu)",
    )

    probe = verbs.add_parser(
        "probe", help="linear-probe top-1 of a tokenizer's frozen code vectors (train -> val)"
    )
    probe.add_argument("path", help="run folder or tokenizer folder")
    probe.add_argument(
        "--data", default=None, help="'mnist5k' or a labelled image folder (default: the run's data)"
    )
    checks.add_data_options(probe, None)
    probe.add_argument("--batch-size", type=int, default=128, help="images per encoding batch")
    probe.add_argument("--max-iter", type=int, default=500, help="L-BFGS iterations per fit (default 500)")
    probe.add_argument("--seed", type=int, default=0, help="seed of the train hold-out split (default 0)")
    probe.add_argument(
        "--input",
        dest="probe_input",
        choices=("pooled", "flat", "decoded", "histogram"),
        default="pooled",
        help="features of each image's tokens: pooled (mean code vector, default), flat (every cell's code "
        "vector), decoded (mean of the decoded teacher-space features; vqkd / cluster only), histogram "
        "(share of each code)",
    )
    probe.add_argument(
        "--out",
        help="JSON file (default: probe_val.json beside the tokenizer; probe_val_INPUT.json for --input)",
    )
    probe.add_argument("--no-progress", action="store_true")


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.generation:
        return _evaluate_generation(args)
    for flag, value in (
        ("--judge", args.judge),
        ("--samples-out", args.samples_out),
        ("--clip-weights", args.clip_weights),
        ("--num-samples", args.num_samples),
        ("--reference", args.reference),
        ("--samples-npz", args.samples_npz),
    ):
        if value is not None:
            raise SemtokError(
                f"{flag} applies to generation metrics: add --generation (PATH an AR or masked run)"
            )
    kind = checks.generator_kind(args.path)
    if kind is not None and not (Path(args.path) / "tokenizer").is_dir():
        model = "an AR model" if kind == "ar" else "a masked model"
        raise SemtokError(f"'{args.path}' holds {model}: add --generation for its generation metrics")
    checks.sampling_options(args, None)
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

    data = args.data or run_dataset(args.path)
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
        labels=checks.data_labels(args, args.path),
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


def _evaluate_generation(args: argparse.Namespace) -> int:
    for flag, value in (("--teacher-weights", args.teacher_weights), ("--lpips-weights", args.lpips_weights)):
        if value is not None:
            raise SemtokError(f"{flag} applies to tokenizer evaluation, not to --generation")
    kind = checks.generator_kind(checks.generator_folder(args.path))
    checks.sampling_options(args, kind, args.path)
    checks.judge_folder(args.judge)
    checks.data_source(args.data)
    checks.positive_int(args.batch_size, "--batch-size")
    checks.input_file(args.inception_weights, "--inception-weights", "weights file")
    checks.input_file(args.clip_weights, "--clip-weights", "weights file")
    checks.output_file(args.samples_out, "--samples-out", (".png",))
    checks.positive_int(args.num_samples, "--num-samples", "a positive number of samples")
    checks.input_file(args.reference, "--reference", "statistics file (.npz)")
    checks.output_file(args.samples_npz, "--samples-npz", (".npz",))
    checks.output_file(args.out, "--out")
    if args.reference is not None:  # a file without mu / sigma fails here, before any sampling
        from semtok.metrics.image_batches import read_stats

        read_stats(args.reference)

    from semtok.data.processes import join
    from semtok.evaluation.common import format_table, write_json
    from semtok.evaluation.generation import evaluate_generation
    from semtok.generators.sampler import resolve_generator_dir
    from semtok.generators.sampling import SamplingConfig

    sampling = SamplingConfig(**checks.sampling_fields(args))
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
        clip_weights=args.clip_weights,
        clip_model=args.clip_model,
        num_samples=args.num_samples,
        reference=args.reference,
        samples_npz=args.samples_npz,
        processes=join(),
        labels=args.labels,
    )
    if results is None:  # another process of a distributed run: the main one writes
        return 0
    name = f"eval_generation_{args.split}_seed{args.seed}.json"
    default = resolve_generator_dir(args.path).parent / name
    out = Path(args.out) if args.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    print(format_table({k: v for k, v in results.items() if not isinstance(v, dict | list)}))
    if "prompt_scores" in results:
        from semtok.evaluation.prompt_scores import format_prompt_scores

        print(format_prompt_scores(results["prompt_scores"]))
    print(f"results: {write_json(results, out)}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    checks.tokenizer_folder(args.path)
    checks.data_source(args.data)
    checks.positive_int(args.batch_size, "--batch-size")
    checks.positive_int(args.max_iter, "--max-iter")
    checks.output_file(args.out, "--out")
    labels = checks.data_labels(args, args.path)
    if labels == "none":
        raise SemtokError("--labels none: the linear probe needs labels (use auto or folders)")

    from semtok.evaluation.common import format_table, write_json
    from semtok.evaluation.probe import linear_probe
    from semtok.hub.pretrained import resolve_model_dir

    data = args.data or run_dataset(args.path)
    results = linear_probe(
        args.path,
        data,
        args.batch_size,
        args.max_iter,
        args.seed,
        progress=not args.no_progress,
        labels=labels,
        inputs=args.probe_input,
    )
    name = "probe_val.json" if args.probe_input == "pooled" else f"probe_val_{args.probe_input}.json"
    out = Path(args.out) if args.out else resolve_model_dir(args.path, "tokenizer").parent / name
    out.parent.mkdir(parents=True, exist_ok=True)
    print(format_table(results))
    print(f"results: {write_json(results, out)}")
    return 0


COMMANDS = {"evaluate": cmd_evaluate, "probe": cmd_probe}
