"""The data verbs: `semtok shards` (write any data set as webdataset tar shards)."""

from __future__ import annotations

import argparse

from semtok.cli import checks


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    shards = verbs.add_parser("shards", help="write a data set as webdataset tar shards + shards.json")
    shards.add_argument(
        "source",
        help="'mnist5k', 'mnist5k-captioned' or an image folder (a COCO root or a captions.jsonl folder: captions)",
    )
    shards.add_argument(
        "--out", required=True, help="output folder: 000000.tar, 000001.tar, ..., shards.json"
    )
    shards.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    shards.add_argument(
        "--split",
        default="all",
        choices=["train", "val", "all"],
        help="which split (default all: train + val)",
    )
    shards.add_argument(
        "--shuffle-seed",
        type=int,
        default=0,
        help="seed of the order samples are written in (default 0); keys stay the source order's indices",
    )
    shards.add_argument("--no-shuffle", action="store_true", help="write the samples in the source order")
    shards.add_argument("--no-progress", action="store_true")


def cmd_shards(args: argparse.Namespace) -> int:
    checks.data_source(args.source, "SOURCE")
    checks.positive_int(args.shard_size, "--shard-size")
    from semtok.data.shard_writer import write_shards

    info = write_shards(
        args.source,
        args.out,
        shard_size=args.shard_size,
        split=args.split,
        shuffle_seed=None if args.no_shuffle else args.shuffle_seed,
        progress=not args.no_progress,
    )
    kind = f"{info['num_classes']} classes" if info["num_classes"] else "unlabelled"
    captioned = ", captioned" if info["captioned"] else ""
    print(f"shards: {len(info['shards'])} shards, {info['total']} samples ({kind}{captioned}) in {args.out}")
    return 0


COMMANDS = {"shards": cmd_shards}
