"""Pixel reconstruction blocks: conv encoder/decoder, PatchGAN + GAN losses, FSQ, VQGAN / CVQ / FSQ
tokenizers, the pixel decoder of feature tokenizers, and the perceptual losses (tiny sizes, seconds)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from semtok.config import from_dict, to_dict
from semtok.errors import SemtokError
from semtok.losses.gan import adaptive_gan_weight, hinge_d_loss, hinge_g_loss
from semtok.losses.perceptual import build_perceptual_loss
from semtok.nn.conv import AttentionBlock, ConvDecoder, ConvEncoder, group_norm
from semtok.nn.discriminator import PatchDiscriminator
from semtok.quantizers import FSQ
from semtok.tokenizers import (
    ConvNetConfig,
    CVQConfig,
    CVQQuantizerConfig,
    CVQTokenizer,
    DecoderConvConfig,
    FSQConfig,
    FSQTokenizer,
    PixelDecoder,
    PixelDecoderConfig,
    Tokenizer,
    VQGANConfig,
    VQGANQuantizerConfig,
    VQGANTokenizer,
)

TINY_CONV = {
    "image_size": 32,
    "conv": ConvNetConfig(
        channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=16, attn_resolutions=(8,)
    ),
}


def images(batch: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1


# ---------------------------------------------------------------------------------------------- conv blocks
def test_group_norm_groups_divide_channels():
    assert group_norm(256).num_groups == 32
    assert group_norm(48).num_groups == 24
    assert group_norm(3).num_groups == 3


def test_encoder_decoder_shapes():
    torch.manual_seed(0)
    encoder = ConvEncoder(3, 16, (1, 2, 2), 1, 8, attn_resolutions=(8,), image_size=32)
    decoder = ConvDecoder(3, 16, (1, 2, 2), 1, 8, attn_resolutions=(8,), image_size=32)
    z = encoder(images())
    assert z.shape == (2, 8, 8, 8)  # f = 4
    assert decoder(z).shape == (2, 3, 32, 32)
    assert decoder(torch.randn(1, 8, 4, 6)).shape == (1, 3, 16, 24)  # any latent size
    # attention at the 8x8 level (plus the mid block) in both networks
    assert sum(isinstance(m, AttentionBlock) for m in encoder.modules()) == 2
    assert sum(isinstance(m, AttentionBlock) for m in decoder.modules()) == 3
    assert decoder.last_layer is decoder.conv_out.weight
    with pytest.raises(SemtokError, match="multiple"):
        encoder(images(size=30))
    with pytest.raises(SemtokError, match="divisible"):
        ConvEncoder(3, 16, (1, 2, 2), 1, 8, image_size=30)


# ---------------------------------------------------------------------------------------------- GAN
def test_discriminator_logits_shape():
    disc = PatchDiscriminator(3, 8, num_layers=3)
    assert disc(images()).shape == (2, 1, 2, 2)
    assert PatchDiscriminator(3, 8, num_layers=2)(images()).shape == (2, 1, 6, 6)


def test_hinge_losses_by_hand():
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - r) = 0, 0.5, 2 -> mean 5/6
    fake = torch.tensor([-2.0, 0.0, 1.0])  # relu(1 + f) = 0, 1, 2 -> mean 1
    torch.testing.assert_close(hinge_d_loss(real, fake), torch.tensor(0.5 * (5 / 6 + 1)))
    torch.testing.assert_close(hinge_g_loss(fake), torch.tensor(1 / 3))
    assert float(hinge_d_loss(torch.full((4,), 3.0), torch.full((4,), -3.0))) == 0.0


def test_adaptive_gan_weight():
    torch.manual_seed(0)
    decoder = ConvDecoder(3, 8, (1, 2), 1, 4, image_size=16)
    disc = PatchDiscriminator(3, 8, num_layers=2)
    recon = decoder(torch.randn(2, 4, 8, 8))
    rec_loss = F.l1_loss(recon, images(size=16))
    g_loss = hinge_g_loss(disc(recon))
    weight = adaptive_gan_weight(rec_loss, g_loss, decoder.last_layer)
    assert weight.ndim == 0 and not weight.requires_grad
    assert torch.isfinite(weight) and float(weight) > 0
    rec_grad = torch.autograd.grad(rec_loss, decoder.last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, decoder.last_layer, retain_graph=True)[0]
    torch.testing.assert_close(weight, rec_grad.norm() / (g_grad.norm() + 1e-4))
    assert float(adaptive_gan_weight(rec_loss, g_loss, decoder.last_layer, max_weight=1e-6)) == pytest.approx(
        1e-6
    )
    (rec_loss + weight * g_loss).backward()  # the graphs were kept for the real backward pass


# ---------------------------------------------------------------------------------------------- FSQ
def test_fsq_triple_ids_and_lookup():
    torch.manual_seed(0)
    fsq = FSQ([8, 5, 5, 2])
    assert fsq.num_codes == 400 and fsq.code_dim == 4
    z = torch.randn(3, 4, 5, 4) * 3
    q, ids, aux = fsq(z)
    assert q.shape == z.shape and q.dtype == z.dtype
    assert ids.shape == (3, 4, 5) and ids.dtype == torch.int64
    assert int(ids.min()) >= 0 and int(ids.max()) < 400
    assert float(q.min()) >= -1.0 and float(q.max()) <= 1.0
    torch.testing.assert_close(fsq.lookup(ids), q)
    assert {"loss", "commit_loss", "usage", "perplexity", "restarted"} <= set(aux)
    assert aux["loss"].dtype == torch.float32 and float(aux["loss"]) == 0.0 and aux["restarted"] == 0
    assert 0 < float(aux["usage"]) <= 1 and 1 <= float(aux["perplexity"]) <= 400
    # every id decodes to a distinct code and re-quantizes to itself
    all_ids = torch.arange(fsq.num_codes)
    codes = fsq.lookup(all_ids)
    assert torch.unique(codes, dim=0).shape[0] == 400
    for code in codes:  # the codes lie inside the tanh's range
        assert torch.all(code.abs() <= 1)
    with pytest.raises(SemtokError, match="last dim"):
        fsq(torch.randn(2, 3))
    with pytest.raises(SemtokError, match="levels"):
        FSQ([4, 1])


def test_fsq_every_code_reachable_on_a_grid():
    fsq = FSQ([2, 5, 8])
    axis = torch.linspace(-6, 6, 41)
    grid = torch.cartesian_prod(axis, axis, axis)  # [41**3, 3]
    _, ids, aux = fsq(grid)
    assert torch.unique(ids).numel() == fsq.num_codes == 80
    assert float(aux["usage"]) == 1.0


def test_fsq_straight_through_gradient_and_autocast():
    levels = [8, 5, 3]
    fsq = FSQ(levels)
    z = torch.randn(6, 3, requires_grad=True)
    q, _, _ = fsq(z)
    q.sum().backward()
    z2 = z.detach().clone().requires_grad_()
    half_width = torch.tensor([level // 2 for level in levels], dtype=torch.float32)
    (fsq.bound(z2) / half_width).sum().backward()  # the same function without rounding
    torch.testing.assert_close(z.grad, z2.grad)
    assert torch.all(z.grad > 0)
    z_bf16 = z.detach().bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q16, ids16, _ = fsq(z_bf16)
    assert q16.dtype == torch.bfloat16
    assert torch.equal(ids16, fsq(z_bf16.float())[1])


# ---------------------------------------------------------------------------------------------- tokenizers
def tiny_config(kind: str):
    if kind == "fsq":
        return FSQConfig(**TINY_CONV, levels=(4, 3, 2))
    cls, quantizer = (CVQConfig, CVQQuantizerConfig) if kind == "cvq" else (VQGANConfig, VQGANQuantizerConfig)
    return cls(**TINY_CONV, quantizer=quantizer(code_dim=8, num_codes=32, kmeans_iters=3))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vqgan", "cvq", "fsq"])
def test_tokenizer_forward_encode_decode_save_load(kind, tmp_path):
    torch.manual_seed(0)
    classes = {"vqgan": VQGANTokenizer, "cvq": CVQTokenizer, "fsq": FSQTokenizer}
    tokenizer = classes[kind](tiny_config(kind))
    assert tokenizer.kind == kind and tokenizer.grid_size == (8, 8)
    assert tokenizer.num_codes == (24 if kind == "fsq" else 32)
    x = images(4)
    tokenizer.train()
    recon, ids, aux = tokenizer(x)  # initialises the codebook (k-means) for vqgan / cvq
    assert recon.shape == x.shape and ids.shape == (4, 8, 8) and ids.dtype == torch.int64
    assert "loss" in aux and aux["loss"].ndim == 0
    (F.l1_loss(recon, x) + aux["loss"]).backward()
    assert tokenizer.encoder.conv_in.weight.grad is not None  # straight-through to the encoder
    assert tokenizer.last_layer is tokenizer.decoder.conv_out.weight

    state_before = {k: v.clone() for k, v in tokenizer.quantizer.state_dict().items()}
    encoded = tokenizer.encode(x)  # training mode, but encode never moves the codebook
    for key, value in tokenizer.quantizer.state_dict().items():
        assert torch.equal(value, state_before[key]), key
    tokenizer.eval()
    assert torch.equal(encoded, tokenizer.encode(x))
    assert encoded.shape == (4, 8, 8) and int(encoded.max()) < tokenizer.num_codes
    decoded = tokenizer.decode(encoded)
    assert decoded.shape == x.shape and decoded.dtype == torch.float32
    assert float(decoded.min()) >= -1 and float(decoded.max()) <= 1

    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = Tokenizer.from_pretrained(tmp_path / "tok")
    assert type(loaded) is type(tokenizer) and loaded.config == tokenizer.config
    assert torch.equal(loaded.encode(x), encoded)
    torch.testing.assert_close(loaded.decode(encoded), decoded)
    with pytest.raises(SemtokError, match="token ids"):
        tokenizer.decode(torch.full((1, 8, 8), tokenizer.num_codes))


def test_configs_from_dict_and_defaults():
    cvq = CVQConfig()
    assert cvq.quantizer.distance == "cosine" and cvq.quantizer.dead_code_steps > 0
    vqgan = VQGANConfig()
    assert vqgan.quantizer.distance == "l2" and vqgan.quantizer.dead_code_steps == 0 and vqgan.factor == 16
    raw = to_dict(tiny_config("fsq"))
    assert from_dict(FSQConfig, raw) == tiny_config("fsq")
    assert from_dict(CVQConfig, {"conv": {"channel_mult": [1, 2]}}).conv.channel_mult == (1, 2)
    with pytest.raises(SemtokError, match="image_size"):
        VQGANConfig(image_size=36, conv=ConvNetConfig(channel_mult=(1, 2, 2, 2)))
    with pytest.raises(SemtokError, match="model.quantizer.distance"):
        from_dict(VQGANConfig, {"quantizer": {"distance": "dot"}})
    with pytest.raises(SemtokError, match="model.levels"):
        FSQConfig(levels=(8, 1))


def test_cvq_reseeds_unused_codes():
    torch.manual_seed(0)
    config = CVQConfig(
        **TINY_CONV,
        quantizer=CVQQuantizerConfig(code_dim=8, num_codes=256, kmeans_init=False, dead_code_steps=1),
    )
    tokenizer = CVQTokenizer(config).train()
    _, _, aux = tokenizer(images(2))  # 128 vectors, 256 random codes: at least 128 are unused
    assert aux["restarted"] >= 128
    assert torch.allclose(tokenizer.quantizer.codebook.norm(dim=1), torch.ones(256))
    vqgan = VQGANTokenizer(
        VQGANConfig(**TINY_CONV, quantizer=VQGANQuantizerConfig(code_dim=8, num_codes=256, kmeans_init=False))
    ).train()
    assert vqgan(images(2))[2]["restarted"] == 0  # VQGAN's default: no restarts


# ---------------------------------------------------------------------------------------------- pixel decoder
def test_pixel_decoder_shapes_and_errors():
    torch.manual_seed(0)
    config = PixelDecoderConfig(
        code_dim=6,
        grid=8,
        image_size=32,
        conv=DecoderConvConfig(channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=16),
    )
    decoder = PixelDecoder(config)
    tokens = torch.randn(2, 64, 6)
    out = decoder(tokens, (8, 8))
    assert out.shape == (2, 3, 32, 32)
    torch.testing.assert_close(decoder(tokens), out)  # default grid
    torch.testing.assert_close(decoder(tokens.transpose(1, 2).reshape(2, 6, 8, 8)), out)
    assert decoder(torch.randn(1, 32, 6), (4, 8)).shape == (1, 3, 16, 32)
    assert decoder.last_layer is decoder.decoder.conv_out.weight
    with pytest.raises(SemtokError, match="grid"):
        decoder(tokens, (4, 4))
    with pytest.raises(SemtokError, match="expects codes"):
        decoder(torch.randn(2, 64, 5))
    with pytest.raises(SemtokError, match="3 entries"):
        PixelDecoder(PixelDecoderConfig(grid=8, image_size=32, conv=DecoderConvConfig(channel_mult=(1, 2))))
    with pytest.raises(SemtokError, match="power of two"):
        PixelDecoder(
            PixelDecoderConfig(grid=7, image_size=32, conv=DecoderConvConfig(channel_mult=(1, 2, 2)))
        )
    # a run config's decoder section may leave grid / image_size to the tokenizer; building checks them
    section = from_dict(PixelDecoderConfig, {"conv": {"channels": 16, "channel_mult": [1, 2, 2]}})
    with pytest.raises(SemtokError, match="pixel decoder"):
        PixelDecoder(section)
    fitted = dataclasses.replace(
        section, grid=8, image_size=32, code_dim=6, conv=dataclasses.replace(section.conv, num_res_blocks=1)
    )
    assert PixelDecoder(fitted)(tokens).shape == (2, 3, 32, 32)
    with pytest.raises(SemtokError, match="pixel_decoder.conv.channel_mult"):
        from_dict(PixelDecoderConfig, {"conv": {"channel_mult": []}})


# ---------------------------------------------------------------------------------------------- perceptual
@pytest.fixture(scope="module")
def teacher_loss():
    return build_perceptual_loss("teacher")


def test_teacher_perceptual_loss(teacher_loss):
    loss_fn, name = teacher_loss
    assert name == "effnet-lite0-perceptual"
    assert not any(p.requires_grad for p in loss_fn.parameters())
    loss_fn.train()
    assert not loss_fn.training and not any(m.training for m in loss_fn.modules())
    x = images(2)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    assert float(loss_fn(x, x)) == 0.0
    small = loss_fn((x + 0.05 * noise).clamp(-1, 1), x)
    large = loss_fn((x + 0.5 * noise).clamp(-1, 1), x)
    assert small.ndim == 0 and 0 < float(small) < float(large)
    recon = (x + 0.2 * noise).requires_grad_()
    loss_fn(recon, x).backward()
    assert recon.grad is not None and float(recon.grad.abs().sum()) > 0


def test_perceptual_auto_falls_back_to_teacher_with_reason():
    loss_fn, name = build_perceptual_loss("auto")
    if name.startswith("lpips"):
        pytest.skip("standard LPIPS backbone weights are present on this machine")
    assert name.startswith("effnet-lite0-perceptual (LPIPS unavailable: ") and name.endswith(")")
    assert float(loss_fn(images(1), images(1))) == 0.0
    with pytest.raises(SemtokError, match="kind"):
        build_perceptual_loss("vgg")
