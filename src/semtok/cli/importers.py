"""`semtok import beitv2|taming|llamagen FILE --out DIR`: a public tokenizer checkpoint as an ordinary semtok
tokenizer folder.

Each entry of ``SOURCES`` is one source: its help line, a function adding its own options to its parser and a
function running it on the parsed arguments (the importers themselves are imported only then, so `semtok --help`
does not import torch).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from semtok.errors import SemtokError


@dataclass(frozen=True)
class ImportSource:
    help: str
    add_options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], object]


def _beitv2_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heads", type=int, default=12, help="encoder attention heads (default 12, ViT-B)")
    parser.add_argument("--decoder-heads", type=int, default=12, help="feature-decoder heads (default 12)")
    parser.add_argument(
        "--teacher",
        help="teacher to record (default: clip-vit-b16 for 512-d targets, dino-vitb16 for 768-d)",
    )


def _beitv2(args: argparse.Namespace) -> object:
    from semtok.tokenizers.import_beitv2 import import_beitv2

    return import_beitv2(args.file, args.out, args.heads, args.decoder_heads, args.teacher)


def _pixel_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image-size", type=int, default=256, help="image side the tokenizer is configured for (default 256)"
    )


def _pixel(args: argparse.Namespace) -> object:
    """taming / llamagen: a conv VQ autoencoder (`semtok.tokenizers.importers`), saved to an empty --out."""
    from semtok.tokenizers.importers import IMPORTERS

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SemtokError(f"option --out: '{out}' exists and is not an empty folder")
    tokenizer = IMPORTERS[args.source](args.file, image_size=args.image_size)
    tokenizer.save_pretrained(out)
    print(f"not imported: {tokenizer.info['dropped_keys']}")
    return tokenizer


SOURCES: dict[str, ImportSource] = {
    "beitv2": ImportSource("BEiT v2 VQ-KD tokenizer (microsoft/unilm beit2 .pth)", _beitv2_options, _beitv2),
    "llamagen": ImportSource("LlamaGen VQ-16 tokenizer (vq_ds16_c2i.pt)", _pixel_options, _pixel),
    "taming": ImportSource("taming-transformers VQGAN (Lightning .ckpt)", _pixel_options, _pixel),
}


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    from semtok.cli import _Parser

    verb = verbs.add_parser(
        "import", help="convert a public tokenizer checkpoint into a semtok tokenizer folder"
    )
    sources = verb.add_subparsers(dest="source", required=True, parser_class=_Parser)
    for name, source in SOURCES.items():
        parser = sources.add_parser(name, help=source.help)
        parser.add_argument("file", help="the checkpoint file")
        parser.add_argument(
            "--out", required=True, help="tokenizer folder to write (config.json + safetensors)"
        )
        source.add_options(parser)


def cmd_import(args: argparse.Namespace) -> int:
    tokenizer = SOURCES[args.source].run(args)
    config = tokenizer.config  # type: ignore[attr-defined]
    grid = "x".join(str(s) for s in tokenizer.grid_size)  # type: ignore[attr-defined]
    print(
        f"import {args.source}: {tokenizer.kind} tokenizer, {tokenizer.num_codes} codes, "  # type: ignore[attr-defined]
        f"{grid} tokens at {config.image_size} px, written to {args.out}"
    )
    return 0


COMMANDS = {"import": cmd_import}
