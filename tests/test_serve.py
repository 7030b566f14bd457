"""`semtok serve`: what the page shows (sample grids, token maps, reconstructions, code patches) and the page itself,
served on localhost and driven in headless Chromium (Debian's, through playwright; `.ci/run` installs it)."""

from __future__ import annotations

import io
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semtok.cli import main
from semtok.data.transforms import ValTransform
from semtok.generators.sampler import Sampler
from semtok.pipelines.serve import (
    class_choices,
    code_colours,
    generate_grid,
    inspect_image,
    token_map,
)
from semtok.pipelines.tokenize import tokenize_dataset
from test_cli_masked import TINY_NAR, fsq_tokenizer, image_folder, one_line_error

CHROMIUM = "/usr/bin/chromium"
# The flags Chromium needs on a machine with no network and no screen (see DESIGN.md, offline assets).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "serve.png"


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A masked run (2 training steps) over a random 12-code FSQ tokenizer on two classes, 'dark' and 'light'."""
    root = tmp_path_factory.mktemp("serve")
    images = image_folder(root / "images")
    tokenizer = fsq_tokenizer(root / "tok", (4, 3))
    tokens = tokenize_dataset(tokenizer, str(images), "train", root / "tokens", progress=False)
    args = ["train", "nar", "--tokens", str(tokens), "--out", str(root / "run"), "--no-progress"]
    assert main([*args, *[a for key in TINY_NAR for a in ("--set", key)]]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def sampler(masked_run: Path) -> Sampler:
    return Sampler(masked_run)


def photo(seed: int = 0, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A non-square RGB image with structure (a gradient and a square), so its tokens differ across cells."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None]
    pixels[..., 1] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
    pixels[8:24, 10:30] = rng.integers(0, 255, 3)
    return Image.fromarray(pixels)


def test_code_colours_are_fixed_per_code_and_distinct():
    ids = np.arange(256)
    colours = code_colours(ids)
    assert colours.shape == (256, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours.tolist()}) == 256  # no two of the first 256 codes share a colour
    grid = np.array([[5, 7], [7, 200]])
    assert (code_colours(grid)[0, 1] == code_colours(grid)[1, 0]).all()
    assert (code_colours(grid)[1, 1] == colours[200]).all()


def test_token_map_paints_each_cell_with_its_code(sampler):
    ids = torch.tensor([[0, 1], [2, 11]])
    picture = token_map(ids, image_size=32, min_side=64)
    assert picture.shape == (64, 64, 3) and picture.dtype == np.uint8
    colours = code_colours(ids.numpy())
    for i in range(2):
        for j in range(2):
            cell = picture[i * 32 : (i + 1) * 32, j * 32 : (j + 1) * 32]
            assert (cell == colours[i, j]).all()


def test_inspect_image_encodes_decodes_and_ranks_codes(sampler):
    tokenizer = sampler.tokenizer
    image = photo()
    seen = inspect_image(tokenizer, image, top=5, patches=3, min_side=64)
    pixels = ValTransform(32)(image)[None]
    ids = tokenizer.encode(pixels)[0]
    assert torch.equal(seen.ids, ids)
    assert seen.tokens.shape == seen.reconstruction.shape == seen.image.shape == (64, 64, 3)
    # the reconstruction shown is decode(encode(image)), upscaled 2x by nearest neighbour
    recon = ((tokenizer.decode(ids[None]).clamp(-1, 1)[0] + 1) / 2).mul(255).round().to(torch.uint8)
    assert np.array_equal(seen.reconstruction[::2, ::2], recon.permute(1, 2, 0).numpy())
    counts = [count for _, count, _ in seen.top_codes]
    assert counts == sorted(counts, reverse=True) and 1 <= len(counts) <= 5
    for code, count, picture in seen.top_codes:
        assert count == int((ids == code).sum())
        assert picture.ndim == 3 and picture.dtype == np.uint8 and picture.shape[0] >= 32
    with pytest.raises(Exception, match="expected a PIL image"):
        inspect_image(tokenizer, np.zeros((8, 8, 3)))


def test_generate_grid_is_seeded_and_names_classes(sampler):
    assert class_choices(sampler) == ["dark", "light"]
    grid, provenance = generate_grid(sampler, "light", n=3, seed=4, cfg_scale=1.5, temperature=1.0, steps=3)
    again, _ = generate_grid(sampler, "light", n=3, seed=4, cfg_scale=1.5, temperature=1.0, steps=3)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and min(grid.shape[:2]) >= 256
    assert np.array_equal(grid, again)
    assert provenance["classes"] == [1] and provenance["decoding"] == "masked"
    assert provenance["sampling"]["steps"] == 3 and provenance["sampling"]["cfg_scale"] == 1.5
    with pytest.raises(Exception, match="class 'nope': expected one of dark, light"):
        generate_grid(sampler, "nope", n=1, seed=0, cfg_scale=1.0, temperature=1.0)


def test_serve_without_gradio_says_how_to_install(masked_run, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    line = one_line_error(["serve", str(masked_run)], capsys)
    assert "pip install 'semtok[app]'" in line


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--port", "70000"], "--port 70000: expected a port number 1..65535"),
        (["--tokenizer", "/nonexistent/tok"], "--tokenizer '/nonexistent/tok'"),
    ],
)
def test_serve_bad_options_are_one_line(masked_run, capsys, extra, message):
    assert message in one_line_error(["serve", str(masked_run), *extra], capsys)


def test_serve_on_a_busy_port_is_one_line(masked_run, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(["serve", str(masked_run), "--port", str(port)], capsys)
    assert f"--port {port}: cannot serve on 127.0.0.1:{port}" in line and "choose another --port" in line


def test_serve_needs_a_generator(tmp_path, capsys):
    tokenizer = fsq_tokenizer(tmp_path / "tok", (4, 3))
    assert "AR or masked model" in one_line_error(["serve", str(tokenizer)], capsys)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:::gradio.queueing")  # gradio's own pandas deprecations
def test_page_generates_and_shows_tokens_in_chromium(sampler, tmp_path):
    pytest.importorskip("gradio", reason="gradio is not installed (pip install 'semtok[app]')")
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    from semtok.pipelines.serve_app import build_app, launch

    app = build_app(sampler)
    url = launch(app, "127.0.0.1", free_port(), block=False, quiet=True)
    upload = tmp_path / "upload.png"
    photo(1, (64, 64)).save(upload)
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),  # a fresh, empty --user-data-dir
                executable_path=CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"),
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1200, "height": 800},
            )
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(url)
            page.locator("#generate").click()
            image = page.locator("#samples img")
            image.wait_for(state="visible")
            page.wait_for_function(
                "() => { const i = document.querySelector('#samples img'); return i && i.complete && "
                "i.naturalWidth > 0; }"
            )
            width = image.evaluate("img => img.naturalWidth")
            assert width >= 256  # the grid of 8 samples, upscaled
            # exactly the grid of the page's defaults: first class, 8 samples, seed 0, CFG 1.75, T 1, 12 steps
            shown = page.request.get(image.evaluate("img => img.src"))
            assert shown.ok
            expected, _ = generate_grid(sampler, "dark", 8, 0, 1.75, 1.0, 12)
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(shown.body())).convert("RGB")), expected)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            page.get_by_role("tab", name="Tokens").click()
            page.locator("#upload input[type=file]").set_input_files(str(upload))
            page.wait_for_function(
                "() => ['#token-map img', '#reconstruction img'].every(s => { const i = "
                "document.querySelector(s); return i && i.complete && i.naturalWidth > 0; })"
            )
            assert page.locator("#top-codes img").count() >= 1
            page.screenshot(path=str(SCREENSHOT.with_name("serve-tokens.png")), full_page=True)
            browser.close()
    finally:
        app.close()
    with Image.open(SCREENSHOT) as shot:
        assert shot.size[0] == 1200 and shot.size[1] >= 400


@pytest.fixture(scope="module")
def ar_run(masked_run: Path) -> Path:
    """A class-conditional AR run (2 steps) on the same tokens as ``masked_run``."""
    tokens = masked_run.parent / "tokens.json"
    args = [
        "train",
        "ar",
        "--tokens",
        str(tokens),
        "--out",
        str(masked_run.parent / "ar-run"),
        "--no-progress",
    ]
    assert main([*args, *[a for key in TINY_NAR for a in ("--set", key)]]) == 0
    return masked_run.parent / "ar-run"


@pytest.mark.slow
def test_ar_page_has_no_masked_controls(ar_run):
    gradio = pytest.importorskip("gradio", reason="gradio is not installed (pip install 'semtok[app]')")
    from semtok.pipelines.serve_app import build_app

    sampler = Sampler(ar_run)
    assert sampler.family == "ar" and not sampler.is_text
    grid, provenance = generate_grid(sampler, "dark", n=2, seed=1, cfg_scale=3.0, temperature=0.8)
    again, _ = generate_grid(sampler, "dark", n=2, seed=1, cfg_scale=3.0, temperature=0.8)
    assert np.array_equal(grid, again) and provenance["classes"] == [0]
    assert provenance["decoding"] == "autoregressive" and provenance["sampling"]["temperature"] == 0.8
    app = build_app(sampler)
    by_id = {block.elem_id: block for block in app.blocks.values() if getattr(block, "elem_id", None)}
    assert isinstance(by_id["condition"], gradio.Dropdown)
    assert [choice[0] for choice in by_id["condition"].choices] == ["dark", "light"]
    assert by_id["steps"].visible is False  # decoding steps belong to masked models
    assert isinstance(by_id["samples"], gradio.Image) and isinstance(by_id["top-codes"], gradio.Gallery)
