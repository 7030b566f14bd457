"""Pixel-reconstruction training: baselines and the pixel decoder of a feature tokenizer, with GAN and resume."""

import pytest
import torch
from safetensors.torch import load_file

from semtok.config import load_config
from semtok.errors import SemtokError
from semtok.tokenizers import Tokenizer
from semtok.training import train
from semtok.training.pixel import RUN_CONFIGS
from semtok.training.vqkd import VQKDRunConfig

TINY_CONV = [
    "model.conv.channels=16",
    "model.conv.channel_mult=[1, 2]",
    "model.conv.z_channels=16",
    "model.conv.num_res_blocks=1",
    "train.steps=6",
    "train.batch_size=4",
    "train.warmup_steps=1",
    "train.checkpoint_every=3",
    "train.log_every=1",
    "loss.disc_start=2",
    "loss.disc_channels=8",
    "loss.disc_layers=1",
    "loss.perceptual=teacher",
]


def run(kind, overrides, out, **kwargs):
    config = load_config(RUN_CONFIGS[kind], f"{kind}-mnist", overrides)
    return train(kind, config, out, progress=False, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, extra", [("vqgan", ["model.quantizer.num_codes=32"]), ("fsq", ["model.levels=[4, 4]"])]
)
def test_baseline_trains_with_gan_and_resumes_exactly(kind, extra, image_folder, tmp_path):
    overrides = [*TINY_CONV, *extra, f"data.dataset={image_folder}"]
    summary = run(kind, overrides, tmp_path / "straight")
    assert summary["perceptual_loss"].startswith("effnet-lite0-perceptual")
    assert summary["final_losses"]["loss/discriminator"] > 0  # the GAN was on
    run(kind, overrides, tmp_path / "split", stop_at=3)
    run(kind, overrides, tmp_path / "split", resume=True)
    a = load_file(str(tmp_path / "straight" / "tokenizer" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "tokenizer" / "model.safetensors"))
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6, rtol=0), key
    tokenizer = Tokenizer.from_pretrained(tmp_path / "straight" / "tokenizer")
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    decoded = tokenizer.decode(tokenizer.encode(images))
    assert decoded.shape == (2, 3, 32, 32) and decoded.abs().max() <= 1


@pytest.mark.slow
def test_pixel_decoder_for_vqkd(tiny_vqkd_overrides, image_folder, tmp_path):
    train(
        "vqkd",
        load_config(VQKDRunConfig, "vqkd-mnist", tiny_vqkd_overrides),
        tmp_path / "vqkd",
        progress=False,
    )
    before = load_file(str(tmp_path / "vqkd" / "tokenizer" / "model.safetensors"))
    overrides = [
        f"tokenizer={tmp_path / 'vqkd'}",
        "decoder.conv.channels=16",
        "decoder.conv.channel_mult=[1, 2, 2, 2]",  # 4x4 codes -> 32 px
        "decoder.conv.z_channels=16",
        *[o for o in TINY_CONV if not o.startswith("model.")],
        f"data.dataset={image_folder}",
    ]
    config = load_config(RUN_CONFIGS["decoder"], "decoder-vqkd-mnist", overrides)
    train("decoder", config, tmp_path / "dec", progress=False)
    tokenizer = Tokenizer.from_pretrained(tmp_path / "dec" / "tokenizer")
    after = tokenizer.state_dict()
    for key, value in before.items():  # encoder, quantizer and feature decoder untouched
        assert torch.equal(after[key], value), key
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    ids = tokenizer.encode(images)
    assert ids.shape == (2, 4, 4)
    assert tokenizer.decode(ids).shape == (2, 3, 32, 32)


@pytest.mark.slow
def test_decoder_needs_a_feature_tokenizer(image_folder, tmp_path):
    run(
        "fsq",
        [*TINY_CONV, "model.levels=[4, 4]", "train.steps=1", f"data.dataset={image_folder}"],
        tmp_path / "fsq",
    )
    config = load_config(RUN_CONFIGS["decoder"], "decoder-vqkd-mnist", [f"tokenizer={tmp_path / 'fsq'}"])
    with pytest.raises(SemtokError, match="reconstructs pixels already"):
        train("decoder", config, tmp_path / "dec", progress=False)
    config = load_config(RUN_CONFIGS["decoder"], "decoder-vqkd-mnist")
    with pytest.raises(SemtokError, match="config key 'tokenizer'"):
        train("decoder", config, tmp_path / "dec", progress=False)


@pytest.mark.slow
def test_evaluate_and_reconstruct_pixel_tokenizer(image_folder, tmp_path):
    from semtok.cli import main
    from semtok.evaluation.tokenizer import evaluate_tokenizer

    run(
        "fsq",
        [*TINY_CONV, "model.levels=[4, 4]", "train.steps=2", f"data.dataset={image_folder}"],
        tmp_path / "fsq",
    )
    results = evaluate_tokenizer(tmp_path / "fsq", str(image_folder), "val", progress=False)
    assert 0 < results["psnr"] < 100 and -1 <= results["ssim"] <= 1
    assert results["rfid"] > 0 and "tf-inception" in results["fid_extractor"].lower()
    assert "6 images" in results["fid_reference"]
    assert results["perceptual_loss_in_training"].startswith("effnet-lite0-perceptual")
    assert "skipped" in results["lpips_model"].lower() or "lpips" in results
    grid = tmp_path / "grid.png"
    assert (
        main(
            [
                "reconstruct",
                str(tmp_path / "fsq"),
                "--data",
                str(image_folder),
                "--n",
                "4",
                "--out",
                str(grid),
            ]
        )
        == 0
    )
    from PIL import Image

    assert Image.open(grid).size == (4 * 34 + 2, 2 * 34 + 2)  # 4 originals over their 4 reconstructions
