"""taming-transformers VQGAN (Esser et al. 2021) -> a semtok ``vqgan`` tokenizer.

Written for the public f16 ImageNet checkpoints ``vqgan_imagenet_f16_1024/ckpts/last.ckpt`` and
``vqgan_imagenet_f16_16384/ckpts/last.ckpt``: a Lightning checkpoint whose ``state_dict`` holds ``encoder.*``
(``down.{i}.block.{j}``, ``down.{i}.attn.{j}``, ``down.{i}.downsample``, ``mid.block_1 / attn_1 / block_2``),
``decoder.*`` (the same with ``up.{i}`` indexed by resolution level, 0 = full resolution, and ``upsample``),
``quant_conv``, ``post_quant_conv`` and ``quantize.embedding.weight`` [K, 256] (nearest code by L2 distance), plus
``loss.*`` (the discriminator and LPIPS of training: not imported). The architecture (ch 128, ch_mult
[1, 1, 2, 2, 4], 2 ResNet blocks, attention at 16 px, z 256) is read from the tensor shapes; only the image size,
which places the attention levels by resolution, is an option (256, the checkpoints' ``resolution``).
"""

from __future__ import annotations

import os

from semtok.errors import SemtokError
from semtok.tokenizers.importers.checkpoint_file import read_checkpoint, state_dict_in
from semtok.tokenizers.importers.conv_mapping import SourceState, attention, build_tokenizer, conv, resnet
from semtok.tokenizers.vqgan import VQGANTokenizer

SOURCE = "taming"


def import_taming(path: str | os.PathLike, image_size: int = 256) -> VQGANTokenizer:
    """A taming-transformers VQGAN checkpoint (``.ckpt`` / ``.pt`` / ``.safetensors``) -> :class:`VQGANTokenizer`.

    The tokenizer encodes images [B, 3, H, W] in [-1, 1] (H, W multiples of 16 for f16) to ids [B, H/16, W/16]
    exactly as ``VQModel.encode`` + ``quantize`` do, and decodes them as ``VQModel.decode_code`` does. Its
    ``info`` records the source file and the dropped ``loss.*`` keys.

    Raises:
        SemtokError: one line: unreadable file, a pickle needing code, or the first missing / unexpected key.
    """
    state = state_dict_in(read_checkpoint(path, SOURCE), ("state_dict",), path, SOURCE)
    src = SourceState(state, path, SOURCE, dropped=lambda key: key.startswith("loss."))
    channels = int(src.take("encoder.conv_in.weight").shape[0])
    levels = src.count("encoder.down")
    if levels == 0:
        src.take("encoder.down.0.block.0.conv1.weight")  # names the missing key
    blocks = src.count("encoder.down.0.block")
    mult = []
    for i in range(levels):
        width = int(src.take(f"encoder.down.{i}.block.0.conv1.weight").shape[0])
        if width % channels:
            raise SemtokError(f"{src.where()}: level {i} width {width} is not a multiple of ch {channels}")
        mult.append(width // channels)
    attn_levels = [i for i in range(levels) if src.count(f"encoder.down.{i}.attn")]
    decoder_attn = [i for i in range(levels) if src.count(f"decoder.up.{i}.attn")]
    if decoder_attn != attn_levels:
        raise SemtokError(
            f"{src.where()}: attention at encoder levels {attn_levels} but decoder levels {decoder_attn} "
            "(semtok's VQGAN needs the same attn_resolutions in both)"
        )

    out: dict = {}
    conv(out, "encoder.conv_in", src, "encoder.conv_in")
    for i in range(levels):
        for j in range(blocks):
            resnet(out, f"encoder.levels.{i}.blocks.{j}", src, f"encoder.down.{i}.block.{j}")
            if i in attn_levels:
                attention(out, f"encoder.levels.{i}.attns.{j}", src, f"encoder.down.{i}.attn.{j}")
        if i < levels - 1:
            conv(out, f"encoder.levels.{i}.resample.conv", src, f"encoder.down.{i}.downsample.conv")
    for part in ("encoder", "decoder"):
        resnet(out, f"{part}.mid.block1", src, f"{part}.mid.block_1")
        attention(out, f"{part}.mid.attn", src, f"{part}.mid.attn_1")
        resnet(out, f"{part}.mid.block2", src, f"{part}.mid.block_2")
        conv(out, f"{part}.norm_out", src, f"{part}.norm_out")
        conv(out, f"{part}.conv_out", src, f"{part}.conv_out")
    conv(out, "decoder.conv_in", src, "decoder.conv_in")
    for j in range(levels):  # our decoder levels run from the lowest resolution; taming's up.{i} by level
        i = levels - 1 - j
        for b in range(blocks + 1):
            resnet(out, f"decoder.levels.{j}.blocks.{b}", src, f"decoder.up.{i}.block.{b}")
            if i in attn_levels:
                attention(out, f"decoder.levels.{j}.attns.{b}", src, f"decoder.up.{i}.attn.{b}")
        if i > 0:
            conv(out, f"decoder.levels.{j}.resample.conv", src, f"decoder.up.{i}.upsample.conv")
    conv(out, "quant_conv", src, "quant_conv")
    conv(out, "post_quant_conv", src, "post_quant_conv")
    codebook = src.take("quantize.embedding.weight")
    src.finish()

    tokenizer = build_tokenizer(
        src,
        channels=channels,
        channel_mult=mult,
        num_res_blocks=blocks,
        z_channels=int(out["encoder.conv_out.weight"].shape[0]),
        attn_levels=attn_levels,
        codebook=codebook,
        distance="l2",
        image_size=image_size,
        state=out,
    )
    tokenizer.info = {
        "imported_from": {"source": "taming-transformers VQGAN", "file": os.fspath(path)},
        "dropped_keys": f"{len(src.dropped)} tensors: loss.* (discriminator, LPIPS; training only)",
    }
    return tokenizer
