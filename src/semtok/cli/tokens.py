"""The verbs over token grids: `semtok tokenize`, `semtok sample`, `semtok reconstruct`."""

from __future__ import annotations

import argparse

from semtok.cli import checks
from semtok.config import run_dataset
from semtok.errors import SemtokError


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    tokenize = verbs.add_parser("tokenize", help="token ids of a data set to .npy + JSON manifest")
    tokenize.add_argument("path", help="run folder or tokenizer folder")
    tokenize.add_argument(
        "--data",
        required=True,
        help="'mnist5k', 'mnist5k-captioned' or an image folder (a COCO root or a captions.jsonl folder: captions)",
    )
    checks.add_data_options(tokenize, "all")
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
    tokenize.add_argument(
        "--num-workers",
        type=int,
        default=-1,
        help="DataLoader workers that decode and augment (default -1: auto, 0 for in-memory data such as mnist5k)",
    )
    tokenize.add_argument("--no-progress", action="store_true")
    tokenize.add_argument(
        "--format",
        default="semtok",
        choices=["semtok", "llamagen"],
        help="semtok: one token file (default); llamagen: --out is a folder of LlamaGen's extract_codes_c2i.py "
        "layout (OUT/imagenetSIZE_codes/I.npy [1, views, h*w], OUT/imagenetSIZE_labels/I.npy [1])",
    )

    sample = verbs.add_parser(
        "sample", help="sample images from a trained AR or masked model, decoded by its tokenizer"
    )
    sample.add_argument("path", help="AR or masked run folder (holding ar/ or nar/), or its model folder")
    which = sample.add_mutually_exclusive_group()
    which.add_argument("--class", dest="label", type=int, default=None, help="class index to sample")
    which.add_argument(
        "--all-classes", action="store_true", help="a grid with one row of --n samples per class"
    )
    which.add_argument(
        "--prompt",
        action="append",
        dest="prompts",
        metavar="TEXT",
        help="text models: a prompt, --n samples each (repeatable)",
    )
    which.add_argument(
        "--prompts", dest="prompts_file", metavar="FILE", help="text models: a file of prompts, one per line"
    )
    sample.add_argument(
        "--n",
        "--num-images",
        dest="n",
        type=int,
        default=16,
        help="samples (per class with --all-classes; default 16); under torchrun write --num-images (torchrun's "
        "own parser reads --n as an abbreviation of its options)",
    )
    checks.add_sampling_options(sample)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--batch-size", type=int, default=64)
    sample.add_argument(
        "--no-cache", action="store_true", help="AR models: recompute the prefix every step (slow)"
    )
    sample.add_argument("--tokenizer", help="decode with this tokenizer folder (default: the recorded one)")
    sample.add_argument("--images", help="also write every sample as its own PNG into this folder")
    sample.add_argument("--out", required=True, help="grid image (.png; provenance inside and in .json)")
    sample.add_argument("--no-progress", action="store_true")

    reconstruct = verbs.add_parser(
        "reconstruct", help="write originals beside their reconstructions as a grid"
    )
    reconstruct.add_argument("path", help="run folder or tokenizer folder (with a pixel decoder)")
    reconstruct.add_argument(
        "--data", default=None, help="'mnist5k' or an image folder (default: the run's data)"
    )
    checks.add_data_options(reconstruct, "val")
    reconstruct.add_argument("--n", type=int, default=32, help="number of images (default 32)")
    reconstruct.add_argument("--out", required=True, help="image file, e.g. grid.png")


def cmd_tokenize(args: argparse.Namespace) -> int:
    checks.tokenizer_folder(args.path)
    checks.data_source(args.data)
    checks.positive_int(args.batch_size, "--batch-size")
    if args.num_workers < -1:
        raise SemtokError(f"--num-workers {args.num_workers}: expected -1 (auto), 0 or a positive number")
    checks.positive_int(args.views, "--views", "a positive number of views")
    if args.views > 1 and (args.augment == "none" or args.split == "val"):
        raise SemtokError(
            f"--views {args.views}: several views need --augment flip|crop_flip and --split train or all"
        )
    low, high = args.crop_scale
    if not 0 < low <= high <= 1:
        raise SemtokError(f"--crop-scale {low} {high}: expected 0 < MIN <= MAX <= 1")
    out = args.out
    if args.format == "llamagen":
        from semtok.cli.llamagen import staging_name

        out = staging_name(args.out)
    checks.token_output(out)

    from semtok.data.processes import join
    from semtok.data.token_file import read_token_file
    from semtok.pipelines.tokenize import tokenize_dataset

    manifest = tokenize_dataset(
        args.path,
        args.data,
        args.split,
        out,
        batch_size=args.batch_size,
        views=args.views,
        augment=args.augment,
        crop_scale=tuple(args.crop_scale),
        seed=args.seed,
        progress=not args.no_progress,
        num_workers=args.num_workers,
        processes=join(),
        labels=checks.data_labels(args),
    )
    if manifest is None:  # another process of a distributed run: the main one writes
        return 0
    if args.format == "llamagen":
        from semtok.cli.llamagen import publish

        return publish(manifest, args.out, args.views)
    ids, _, info = read_token_file(manifest)
    print(f"tokens: {ids.shape[0]} rows x {list(ids.shape[1:])} ({args.views} view(s)) -> {manifest}")
    carried = info.get("data", {}).get("captions")
    if carried is not None:
        print(
            f"captions: {carried['captions']} captions of {carried['images']} images carried, one list per row "
            f"-> {manifest.parent / info['captions_file']}"
        )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    kind = checks.generator_kind(checks.generator_folder(args.path))
    checks.sampling_options(args, kind, args.path)
    checks.tokenizer_folder(args.tokenizer, "--tokenizer")
    checks.positive_int(args.n, "--n", "a positive number of samples")
    checks.positive_int(args.batch_size, "--batch-size")
    checks.non_negative_int(args.label, "--class")
    checks.output_file(args.out, "--out", (".png",))
    checks.output_dir(args.images, "--images")

    import torch

    from semtok.data.processes import join
    from semtok.generators.sampler import Sampler
    from semtok.generators.sampling import SamplingConfig
    from semtok.visual.provenance import write_samples

    prompts = checks.prompt_list(args.prompts, args.prompts_file)
    sampling = SamplingConfig(**checks.sampling_fields(args))
    sampler = Sampler(args.path, args.tokenizer)
    processes = join()
    if sampler.is_text != (prompts is not None):
        if sampler.is_text:
            raise SemtokError(
                f"'{args.path}' is a text model: give --prompt TEXT or --prompts FILE, not classes"
            )
        raise SemtokError(f"--prompt / --prompts: '{args.path}' is class-conditional (give --class N)")
    if prompts is not None:
        path = write_samples(
            sampler,
            None,
            args.out,
            sampling,
            args.seed,
            args.n,
            args.batch_size,
            args.images,
            not args.no_progress,
            prompts=[prompt for prompt in prompts for _ in range(args.n)],
            processes=processes,
        )
        if path is None:  # another process of a distributed run: the main one writes
            return 0
        count = len(prompts) * args.n
        print(f"samples: {path} ({count} images; provenance in {path.with_suffix('.json')})")
        return 0
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
        processes=processes,
    )
    if path is None:
        return 0
    print(f"samples: {path} ({len(labels)} images; provenance in {path.with_suffix('.json')})")
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
    dataset = build_dataset(
        args.data or run_dataset(args.path),
        args.split,
        tokenizer.config.image_size,
        labels=checks.data_labels(args, args.path),
    )
    images = torch.stack([dataset[i][0] for i in range(min(args.n, len(dataset)))])
    print(f"reconstructions: {save_grid(reconstruction_grid(tokenizer, images), args.out)}")
    return 0


COMMANDS = {"tokenize": cmd_tokenize, "sample": cmd_sample, "reconstruct": cmd_reconstruct}
