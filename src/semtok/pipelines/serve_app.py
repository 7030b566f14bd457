"""`semtok serve`: a Gradio page over a trained AR or masked run (needs the optional extra ``semtok[app]``).

Tab "Generate": a class (menu of the run's class names) or a prompt (text models), seed, CFG scale, temperature and,
for masked models, decoding steps -> a grid of samples and their provenance. Tab "Tokens": upload an image -> its
token map (a fixed colour per code id), its reconstruction and the patches of its most used codes.

Gradio is imported only here and only when the page is built; without it :func:`require_gradio` raises one line.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from semtok.errors import SemtokError
from semtok.generators.sampler import Sampler
from semtok.pipelines.serve import class_choices, generate_grid, inspect_image

__all__ = ["build_app", "launch", "require_gradio"]

# Fonts the browser has (the default theme asks Google Fonts for them: not reachable offline).
LOCAL_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
LOCAL_MONO = ["ui-monospace", "monospace"]


def require_gradio() -> Any:
    """The ``gradio`` module, or one line saying how to install it (:class:`SemtokError`)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the server
    try:
        import gradio
    except ImportError:
        raise SemtokError("serve needs gradio, which is not installed: pip install 'semtok[app]'") from None
    return gradio


def _theme(gr: Any) -> Any:
    return gr.themes.Default(font=LOCAL_FONTS, font_mono=LOCAL_MONO)


def _short(folder: Path) -> str:
    """A folder by its last two names (``run/nar``); the page lists the full paths under "files"."""
    return "/".join(Path(folder).resolve().parts[-2:])


def _raise_on_page(gr: Any, function: Any) -> Any:
    """``function`` with a :class:`SemtokError` shown on the page (``gr.Error``) instead of a traceback."""

    def wrapped(*args: Any) -> Any:
        try:
            return function(*args)
        except SemtokError as error:
            raise gr.Error(str(error)) from None

    return wrapped


def build_app(sampler: Sampler, title: str | None = None) -> Any:
    """The page for ``sampler`` (a :class:`semtok.generators.sampler.Sampler`): a ``gradio.Blocks``, not launched.

    Pictures are sent as PNG (lossless: the page shows exactly the grid :func:`generate_grid` makes). Element ids a test (or a user's script) can rely on: ``condition`` (class menu or prompt box), ``seed``,
    ``cfg``, ``temperature``, ``steps`` (masked models only), ``n``, ``generate`` (button), ``samples`` (output
    image); on the second tab ``upload``, ``token-map``, ``reconstruction``, ``top-codes`` (gallery)."""
    gr = require_gradio()
    masked = sampler.family == "masked"
    noun = "masked (MaskGIT / MAGE)" if masked else "autoregressive"
    condition_kind = "text" if sampler.is_text else "class"
    title = title or f"semtok: {sampler.model_dir.parent.name or sampler.model_dir.name}"
    blocks_args: dict[str, Any] = {"title": title}
    if "theme" in inspect.signature(gr.Blocks.__init__).parameters:  # gradio < 6 (6 takes it in launch)
        blocks_args["theme"] = _theme(gr)
    with gr.Blocks(**blocks_args) as app:
        gr.Markdown(
            f"## {title}\n{noun} {condition_kind}-conditional model `{_short(sampler.model_dir)}` "
            f"({sampler.model.config.vocab_size} codes, grid {list(sampler.model.config.grid)}); "
            f"tokenizer `{_short(sampler.tokenizer_dir)}` ({sampler.tokenizer.kind})."
        )
        with gr.Accordion("files", open=False):
            gr.Markdown(
                f"model `{sampler.model_dir.resolve()}`\n\ntokenizer `{sampler.tokenizer_dir.resolve()}`"
            )
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    if sampler.is_text:
                        condition = gr.Textbox(
                            label="prompt (empty: unconditional)", value="", elem_id="condition"
                        )
                    else:
                        names = class_choices(sampler)
                        condition = gr.Dropdown(names, value=names[0], label="class", elem_id="condition")
                    n = gr.Slider(1, 32, value=8, step=1, label="samples", elem_id="n")
                    seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
                    cfg = gr.Slider(
                        0.0, 10.0, value=1.75, step=0.05, label="CFG scale (1 = off)", elem_id="cfg"
                    )
                    temperature = gr.Slider(
                        0.0,
                        2.0,
                        value=1.0,
                        step=0.05,
                        label="temperature (0 = greedy)",
                        elem_id="temperature",
                    )
                    steps = gr.Slider(
                        1, 32, value=12, step=1, label="decoding steps", visible=masked, elem_id="steps"
                    )
                    button = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column(scale=2):
                    samples = gr.Image(
                        label="samples", type="numpy", format="png", interactive=False, elem_id="samples"
                    )
                    with gr.Accordion("provenance", open=False):
                        provenance = gr.JSON(label="provenance")

            def on_generate(choice: str, count: float, seed_value: float, scale: float, t: float, k: float):
                if seed_value is None:
                    raise SemtokError("seed: expected an integer")
                return generate_grid(sampler, choice or "", int(count), int(seed_value), scale, t, int(k))

            button.click(
                _raise_on_page(gr, on_generate),
                inputs=[condition, n, seed, cfg, temperature, steps],
                outputs=[samples, provenance],
            )
        with gr.Tab("Tokens"):
            gr.Markdown(
                "Upload an image: it is resized and centre-cropped to the tokenizer's "
                f"{sampler.tokenizer.config.image_size} px, encoded to a "
                f"{'x'.join(map(str, sampler.tokenizer.grid_size))} grid of codes and decoded back. "
                "Each code id has one fixed colour; the patches are the cells (outlined in the code's colour, with "
                "context) of the image's most used codes."
            )
            with gr.Row():
                upload = gr.Image(label="image", type="pil", sources=["upload"], elem_id="upload")
                tokens = gr.Image(
                    label="token map", type="numpy", format="png", interactive=False, elem_id="token-map"
                )
                recon = gr.Image(
                    label="reconstruction", type="numpy", interactive=False, elem_id="reconstruction"
                )
            top = gr.Gallery(
                label="most used codes", columns=4, height="auto", object_fit="contain", elem_id="top-codes"
            )

            def on_upload(image: Any):
                if image is None:
                    return None, None, []
                seen = inspect_image(sampler.tokenizer, image)
                gallery = [(picture, f"code {code} x{count}") for code, count, picture in seen.top_codes]
                return seen.tokens, seen.reconstruction, gallery

            upload.change(_raise_on_page(gr, on_upload), inputs=[upload], outputs=[tokens, recon, top])
    return app


def launch(
    app: Any, host: str = "127.0.0.1", port: int = 7860, block: bool = True, quiet: bool = False
) -> str:
    """Serve ``app`` (from :func:`build_app`) on ``host:port``; returns its local address. ``block``: serve
    until interrupted (Ctrl-C); else return at once with the server running in a thread (``app.close()`` stops it)."""
    gr = require_gradio()
    launch_args: dict[str, Any] = {
        "server_name": host,
        "server_port": port,
        "prevent_thread_lock": True,
        "share": False,
        "quiet": quiet,
        "show_error": True,
    }
    parameters = inspect.signature(app.launch).parameters
    if "theme" in parameters:  # gradio >= 6
        launch_args["theme"] = _theme(gr)
    if "footer_links" in parameters:
        launch_args["footer_links"] = []
    try:
        _, url, _ = app.launch(**launch_args)
    except OSError:
        raise SemtokError(
            f"--port {port}: cannot serve on {host}:{port} (in use?): choose another --port"
        ) from None
    if block:
        try:
            app.block_thread()
        finally:
            app.close()
    return url


def serve(path: str | Path, host: str = "127.0.0.1", port: int = 7860, tokenizer: str | None = None) -> str:
    """Load the run or model folder ``path`` (AR or masked; ``tokenizer``: decode with another tokenizer folder)
    and serve its page until interrupted."""
    require_gradio()
    sampler = Sampler(path, tokenizer)
    return launch(build_app(sampler), host, port)
