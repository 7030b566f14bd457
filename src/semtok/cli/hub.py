"""`semtok push RUN_OR_MODEL --repo org/name [--private]`: model card + upload to the Hugging Face hub."""

from __future__ import annotations

import argparse


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    push = verbs.add_parser(
        "push", help="write a model folder's model card and push it to the Hugging Face hub"
    )
    push.add_argument(
        "path", help="run folder (holding one of tokenizer/, ar/, nar/, judge/) or model folder"
    )
    push.add_argument("--repo", required=True, help="hub repo id org/name (created if new)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--token", default=None, help="hub token (default: HF_TOKEN or `hf auth login`)")
    push.add_argument("--message", default="semtok push", help="commit message")


def _loader(kind: str) -> type:
    if kind == "ar":
        from semtok.generators import ARTransformer

        return ARTransformer
    if kind == "nar":
        from semtok.generators.masked import MaskedTransformer

        return MaskedTransformer
    if kind == "judge":
        from semtok.evaluation.judge import Judge

        return Judge
    from semtok.tokenizers import Tokenizer

    return Tokenizer


def cmd_push(args: argparse.Namespace) -> int:
    from semtok.hub.pretrained import read_model_config
    from semtok.hub.push import model_folder_of, push_folder

    folder = model_folder_of(args.path)
    model = _loader(read_model_config(folder)["kind"]).load_folder(
        folder
    )  # a folder that loads, or one error
    url = push_folder(
        folder,
        args.repo,
        facts=model.card_facts(),
        private=args.private,
        token=args.token,
        commit_message=args.message,
    )
    print(f"model card: {folder / 'README.md'}")
    print(f"pushed: {folder} -> {args.repo} ({url})")
    return 0


COMMANDS = {"push": cmd_push}
