"""The README's "Python API" examples run as written, on a tiny tokenizer, AR and masked model built here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import semtok

README = Path(__file__).resolve().parents[1] / "README.md"

TINY_AR = [
    "model.depth=2",
    "model.width=32",
    "model.heads=2",
    "model.dropout=0.0",
    "train.batch_size=8",
    "train.warmup_steps=1",
    "train.checkpoint_every=5",
    "train.log_every=1",
    "train.steps=2",
]


def api_blocks() -> list[str]:
    """The ```python blocks of the README section "## Python API", in order."""
    text = README.read_text()
    start = text.index("## Python API")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def tiny_vqkd_with_decoder(folder: Path) -> Path:
    """A random VQ-KD tokenizer (EfficientNet-Lite0 teacher at 64 px) with a pixel decoder: 32 px -> 8x8 ids."""
    from semtok.teachers import TeacherConfig
    from semtok.tokenizers import DecoderConvConfig, VQKDConfig, VQKDQuantizerConfig, VQKDTokenizer
    from semtok.tokenizers.pixel_decoder import PixelDecoderConfig

    torch.manual_seed(0)
    decoder = PixelDecoderConfig(
        code_dim=8,
        grid=8,
        image_size=32,
        conv=DecoderConvConfig(channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=16),
    )
    config = VQKDConfig(
        image_size=32, patch_size=4, encoder="tiny", encoder_depth=1, quantizer=VQKDQuantizerConfig(code_dim=8, num_codes=16),
        decoder_width=32, decoder_heads=2, teacher=TeacherConfig(name="effnet-lite0", dim=112, input_size=64, stride=16),
        pixel_decoder=decoder,
    )  # fmt: skip
    return VQKDTokenizer(config).eval().save_pretrained(folder)


def test_api_names_are_lazy_and_documented():
    code = "import sys, semtok; assert 'torch' not in sys.modules and callable(semtok.sample)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode == 0
    for name in semtok.__all__:
        value = getattr(semtok, name)
        if callable(value):
            assert value.__doc__, name


@pytest.mark.slow  # the generation example's FID (sqrtm of 2048 x 2048 covariances) takes most of it
def test_readme_python_api_examples_run(image_folder, tmp_path, monkeypatch):
    from semtok.config import load_config
    from semtok.training import train
    from semtok.training.ar import ARRunConfig
    from semtok.training.nar import NARRunConfig

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMTOK_CACHE", str(tmp_path / "cache"))
    tokenizer_dir = tiny_vqkd_with_decoder(tmp_path / "tok")
    tokens = semtok.tokenize(tokenizer_dir, str(image_folder), "train", tmp_path / "train-tokens")
    train(
        "ar",
        load_config(ARRunConfig, "ar-mnist", [*TINY_AR, f"data.tokens={tokens}"]),
        tmp_path / "ar",
        progress=False,
    )
    train(
        "nar",
        load_config(NARRunConfig, "nar-mnist", [*TINY_AR, f"data.tokens={tokens}"]),
        tmp_path / "nar",
        progress=False,
    )

    blocks = api_blocks()
    assert len(blocks) >= 5, "the Python API section lost its examples"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md (paths)", "exec"), namespace)  # noqa: S102
    assert {"tokenizer_path", "ar_path", "masked_path", "data"} <= namespace.keys()
    namespace.update(
        tokenizer_path=str(tokenizer_dir),
        ar_path=str(tmp_path / "ar"),
        masked_path=str(tmp_path / "nar"),
        data=str(image_folder),
    )
    for index, block in enumerate(blocks[1:], start=1):
        exec(compile(block, f"README.md (Python API block {index})", "exec"), namespace)  # noqa: S102

    assert (tmp_path / "my_tokenizer" / "model.safetensors").exists()
    assert (tmp_path / "tokens" / "val.json").exists() and namespace["token_ids"].shape == (6, 8, 8)
    samples = namespace["samples"]
    assert samples.dtype == torch.float32 and samples.min() >= -1 and samples.max() <= 1
    assert namespace["masked"].min() >= -1 and namespace["masked"].max() <= 1
    assert 0 <= namespace["rec"]["usage"] <= 1 and "rfid" not in namespace["rec"]
    assert namespace["gen"]["samples"] == 6 and namespace["gen"]["gfid"] > 0
    assert 0 <= namespace["probe"]["val_top1"] <= 1


def test_api_errors_are_one_line(tmp_path):
    with pytest.raises(semtok.SemtokError, match="does not exist"):
        semtok.load_tokenizer(tmp_path / "missing")
    with pytest.raises(semtok.SemtokError, match="split"):
        semtok.evaluate(tmp_path, split="test")
    with pytest.raises(semtok.SemtokError, match="no manifest"):
        semtok.load_tokens(tmp_path / "none")
