"""`semtok <verb>`: train, build, evaluate, tokenize, demo, shards, fid, stats, import, push, serve. Errors print one line and
exit with code 2."""

from __future__ import annotations

import argparse
import sys

from semtok.errors import SemtokError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag on one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"semtok: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="semtok", description="Image tokenizers from image-understanding models.")
    parser.add_argument("--version", action="version", version=f"semtok {_version()}")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    from semtok.cli import data, evaluate, fid, hub, importers, pipelines, serve, tokens, train

    train.add_train_parsers(verbs)
    for module in (pipelines, tokens, evaluate, data, fid, importers, hub, serve):
        module.add_parsers(verbs)
    return parser


def _version() -> str:
    from semtok import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from semtok.cli import data, evaluate, fid, hub, importers, pipelines, serve, tokens, train

        if args.verb in ("train", "build"):
            return train.run_train(args)
        commands = {
            **evaluate.COMMANDS,
            **tokens.COMMANDS,
            **pipelines.COMMANDS,
            **data.COMMANDS,
            **fid.COMMANDS,
            **importers.COMMANDS,
            **hub.COMMANDS,
            **serve.COMMANDS,
        }
        return commands[args.verb](args)
    except SemtokError as error:
        print(f"semtok: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semtok: interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
