"""`semtok serve RUN`: a web page (Gradio, the optional extra ``semtok[app]``) over a trained AR or masked run."""

from __future__ import annotations

import argparse
import socket

from semtok.cli import checks
from semtok.errors import SemtokError


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    serve = verbs.add_parser(
        "serve",
        help="a web page over an AR or masked run: generate from a class or prompt; see an image's tokens "
        "(needs pip install 'semtok[app]')",
    )
    serve.add_argument("path", help="AR or masked run folder (holding ar/ or nar/), or its model folder")
    serve.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for the network)"
    )
    serve.add_argument("--tokenizer", help="decode with this tokenizer folder (default: the recorded one)")


def cmd_serve(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise SemtokError(f"--port {args.port}: expected a port number 1..65535")
    if not args.host.strip():
        raise SemtokError("--host '': expected an address such as 127.0.0.1 or 0.0.0.0")
    checks.generator_folder(args.path)
    checks.tokenizer_folder(args.tokenizer, "--tokenizer")
    port_is_free(args.host, args.port)

    from semtok.pipelines.serve_app import require_gradio, serve

    require_gradio()  # before loading the model: the missing extra is the first thing to say
    print(f"serving {args.path} on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    serve(args.path, args.host, args.port, args.tokenizer)
    return 0


def port_is_free(host: str, port: int) -> None:
    """Raise one line unless ``host:port`` can be bound now (checked before the model loads)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
            sock.bind((host, port))
    except OSError as error:
        raise SemtokError(
            f"--port {port}: cannot serve on {host}:{port} ({error.strerror or error}); choose another --port"
        ) from None


COMMANDS = {"serve": cmd_serve}
