"""`semtok import taming|llamagen FILE --out DIR`: a public checkpoint -> a semtok tokenizer folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from semtok.errors import SemtokError

# the keys of semtok.tokenizers.importers.IMPORTERS (listed here so `semtok --help` does not import torch)
SOURCES = ("llamagen", "taming")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "import",
        help="convert a public tokenizer checkpoint (taming VQGAN, LlamaGen VQ) to a tokenizer folder",
    )
    parser.add_argument("source", choices=SOURCES, help="which codebase the checkpoint comes from")
    parser.add_argument("file", help="the checkpoint (.ckpt / .pt / .safetensors); never unpickled with code")
    parser.add_argument(
        "--out", required=True, help="tokenizer folder to write (config.json + model.safetensors)"
    )
    parser.add_argument(
        "--image-size", type=int, default=256, help="image side the tokenizer is configured for (default 256)"
    )


def cmd_import(args: argparse.Namespace) -> int:
    from semtok.tokenizers.importers import IMPORTERS

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SemtokError(f"option --out: '{out}' exists and is not an empty folder")
    tokenizer = IMPORTERS[args.source](args.file, image_size=args.image_size)
    tokenizer.save_pretrained(out)
    grid = tokenizer.grid_size
    print(
        f"imported {args.source} '{args.file}' -> {out} ({tokenizer.num_codes} codes, "
        f"{grid[0]}x{grid[1]} tokens at {args.image_size} px; {tokenizer.info['dropped_keys']} not imported)"
    )
    return 0


COMMANDS = {"import": cmd_import}
