"""LlamaGen VQ-16 (Sun et al. 2024, ``tokenizer/tokenizer_image/vq_model.py``) -> a semtok ``vqgan`` tokenizer.

Written for the public ``vq_ds16_c2i.pt``: a ``torch.save`` dict whose ``model`` entry holds ``encoder.*``
(``conv_blocks.{i}.res.{j}``, ``conv_blocks.{i}.attn.{j}`` at the lowest resolution only, ``.downsample``;
``mid.0 / 1 / 2``), ``decoder.*`` (``conv_blocks.{j}`` from the lowest resolution up, with ``.upsample``),
``quant_conv``, ``post_quant_conv``, ``quantize.embedding.weight`` [16384, 8] and ``quantize.codebook_used`` (a
training-time usage log: not imported). Codes are looked up l2-normalised: the nearest normalised code to the
normalised latent, which is semtok's cosine distance over the normalised codebook. The architecture (ch 128,
ch_mult [1, 1, 2, 2, 4], 2 ResNet blocks, z 256, code dim 8) is read from the tensor shapes.
"""

from __future__ import annotations

import os

import torch.nn.functional as F

from semtok.errors import SemtokError
from semtok.tokenizers.importers.checkpoint_file import read_checkpoint, state_dict_in
from semtok.tokenizers.importers.conv_mapping import SourceState, attention, build_tokenizer, conv, resnet
from semtok.tokenizers.vqgan import VQGANTokenizer

SOURCE = "llamagen"
DROPPED = ("quantize.codebook_used",)


def import_llamagen(path: str | os.PathLike, image_size: int = 256) -> VQGANTokenizer:
    """A LlamaGen VQ checkpoint (``.pt`` with ``model`` / ``ema``, or ``.safetensors``) -> :class:`VQGANTokenizer`.

    The tokenizer encodes images [B, 3, H, W] in [-1, 1] to ids [B, H/f, W/f] as ``VQModel.encode`` does and
    decodes them as ``VQModel.decode_code`` does (f = 16 for VQ-16). ``image_size`` (256) is the size the
    folder's config records; attention sits at the lowest resolution whatever the size.

    Raises:
        SemtokError: one line: unreadable file, a pickle needing code, or the first missing / unexpected key.
    """
    state = state_dict_in(read_checkpoint(path, SOURCE), ("model", "ema"), path, SOURCE)
    src = SourceState(state, path, SOURCE, dropped=lambda key: key in DROPPED)
    channels = int(src.take("encoder.conv_in.weight").shape[0])
    levels = src.count("encoder.conv_blocks")
    if levels == 0:
        src.take("encoder.conv_blocks.0.res.0.conv1.weight")  # names the missing key
    blocks = src.count("encoder.conv_blocks.0.res")
    mult = []
    for i in range(levels):
        width = int(src.take(f"encoder.conv_blocks.{i}.res.0.conv1.weight").shape[0])
        if width % channels:
            raise SemtokError(f"{src.where()}: level {i} width {width} is not a multiple of ch {channels}")
        mult.append(width // channels)
    last = levels - 1

    out: dict = {}
    conv(out, "encoder.conv_in", src, "encoder.conv_in")
    for i in range(levels):
        for j in range(blocks):
            resnet(out, f"encoder.levels.{i}.blocks.{j}", src, f"encoder.conv_blocks.{i}.res.{j}")
            if i == last:
                attention(out, f"encoder.levels.{i}.attns.{j}", src, f"encoder.conv_blocks.{i}.attn.{j}")
        if i < last:
            conv(out, f"encoder.levels.{i}.resample.conv", src, f"encoder.conv_blocks.{i}.downsample.conv")
    for part in ("encoder", "decoder"):
        resnet(out, f"{part}.mid.block1", src, f"{part}.mid.0")
        attention(out, f"{part}.mid.attn", src, f"{part}.mid.1")
        resnet(out, f"{part}.mid.block2", src, f"{part}.mid.2")
        conv(out, f"{part}.norm_out", src, f"{part}.norm_out")
        conv(out, f"{part}.conv_out", src, f"{part}.conv_out")
    conv(out, "decoder.conv_in", src, "decoder.conv_in")
    for j in range(levels):  # both run from the lowest resolution up
        for b in range(blocks + 1):
            resnet(out, f"decoder.levels.{j}.blocks.{b}", src, f"decoder.conv_blocks.{j}.res.{b}")
            if j == 0:
                attention(out, f"decoder.levels.{j}.attns.{b}", src, f"decoder.conv_blocks.{j}.attn.{b}")
        if j < last:
            conv(out, f"decoder.levels.{j}.resample.conv", src, f"decoder.conv_blocks.{j}.upsample.conv")
    conv(out, "quant_conv", src, "quant_conv")
    conv(out, "post_quant_conv", src, "post_quant_conv")
    codebook = F.normalize(src.take("quantize.embedding.weight"), p=2, dim=-1)
    src.finish()

    tokenizer = build_tokenizer(
        src,
        channels=channels,
        channel_mult=mult,
        num_res_blocks=blocks,
        z_channels=int(out["encoder.conv_out.weight"].shape[0]),
        attn_levels=[last],
        codebook=codebook,
        distance="cosine",
        image_size=image_size,
        state=out,
    )
    tokenizer.info = {
        "imported_from": {"source": "LlamaGen VQ", "file": os.fspath(path)},
        "dropped_keys": f"{len(src.dropped)} tensors: quantize.codebook_used (a training-time usage log)",
    }
    return tokenizer
