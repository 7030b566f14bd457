"""Import a BEiT v2 VQ-KD tokenizer checkpoint (microsoft/unilm ``beit2``) as a semtok VQ-KD tokenizer folder.

Written for the released files (beit2/TOKENIZER.md) ``vqkd_encoder_base_decoder_3x768x12_clip-d5036aa7.pth``,
``vqkd_encoder_base_decoder_1x768x12_clip-d93179da.pth`` (CLIP ViT-B/16 teacher, 512-d targets) and
``vqkd_encoder_base_decoder_1x768x12_dino-663c55d7.pth`` (DINO ViT-B/16 teacher, 768-d): ``{"model": state_dict}``,
8192 x 32 codebook, ViT-B/16 encoder at 224 px, a 1- or 3-block feature decoder.

What the original computes and how it maps onto ours (same function, key by key):
- its ViTs (``modeling_finetune.VisionTransformer``, mean-pooling variant, no layer scale, no relative position
  bias) prepend a CLS token with its own position embedding: ``model.cls_token`` holds ``cls_token +
  pos_embed[:, 0]``; its qkv has no bias but separate ``q_bias`` / ``v_bias``: our ``qkv.bias`` is
  ``[q_bias, 0, v_bias]``; ``fc_norm`` (on the patch tokens) is our final ``norm``;
- ``encode_task_layer`` (Linear -> tanh -> Linear) is our ``task_head``; the decoder's 1x1 patch conv is our
  decoder ``embed``; ``decode_task_layer`` is the decoder's ``tanh_mlp`` head;
- the codebook (``quantize.embedding.weight``, unit rows): the original picks argmin of |z|^2 + |e|^2 - 2 z.e
  on the l2-normalised z, which for unit codes is our cosine argmax; its input is the image in [-1, 1] (its
  ``process_type='default'``), which is what ``encode`` takes.
The teacher (``teacher_model.*``) and ``scaling_layer.*`` / ``loss.*`` entries are dropped, as the original's
tokenizer loader does; every other key must be one of the above.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from semtok.errors import SemtokError
from semtok.nn.vit import VIT_SIZES
from semtok.teachers.config import TeacherConfig
from semtok.teachers.registry import TEACHERS
from semtok.tokenizers.vq_config import VQKDQuantizerConfig
from semtok.tokenizers.vqkd import VQKDConfig, VQKDTokenizer

DROPPED_PREFIXES = ("teacher_model.", "scaling_layer.", "loss")
TEACHERS_BY_DIM = {512: "clip-vit-b16", 768: "dino-vitb16"}  # the two released teachers' target dims
BLOCK_KEYS = {  # original key inside a block -> ours (qkv.bias is built from q_bias / v_bias)
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "attn.qkv.weight": "attn.qkv.weight",
    "attn.proj.weight": "attn.proj.weight",
    "attn.proj.bias": "attn.proj.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.0.weight",
    "mlp.fc1.bias": "mlp.0.bias",
    "mlp.fc2.weight": "mlp.2.weight",
    "mlp.fc2.bias": "mlp.2.bias",
}


def load_beitv2_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a BEiT v2 VQ-KD ``.pth`` file (``{"model": ...}`` or ``{"state_dict": ...}``), read with
    ``weights_only=True`` (a pickle that needs code execution is refused), teacher / loss entries dropped."""
    path = Path(path)
    if not path.is_file():
        raise SemtokError(f"beitv2 checkpoint '{path}': no such file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, not a torch file, or a pickle that wants to run code
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SemtokError(
            f"beitv2 checkpoint '{path}' does not load as plain tensors: {reason[:200]}"
        ) from None
    state = raw.get("model", raw.get("state_dict")) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or "quantize.embedding.weight" not in state:
        raise SemtokError(
            f"beitv2 checkpoint '{path}': expected a BEiT v2 VQ-KD file (a dict with 'model' holding "
            "'quantize.embedding.weight')"
        )
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise SemtokError(f"beitv2 checkpoint '{path}': entry '{bad[0]}' is not a tensor")
    return {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIXES)}


def _depth(state: dict[str, torch.Tensor], prefix: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(prefix)}blocks\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def _shape(state: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise SemtokError(f"beitv2 checkpoint: missing key '{key}'")
    return tuple(state[key].shape)


def beitv2_config(
    state: dict[str, torch.Tensor], heads: int = 12, decoder_heads: int = 12, teacher: str | None = None
) -> VQKDConfig:
    """The VQ-KD config of the checkpoint's tensors: sizes from their shapes; ``heads`` / ``decoder_heads`` (not
    in the shapes) and ``teacher`` (default: CLIP ViT-B/16 for 512-d targets, DINO ViT-B/16 for 768-d) given."""
    width, _, patch, _ = _shape(state, "encoder.patch_embed.proj.weight")
    positions = _shape(state, "encoder.pos_embed")[1] - 1
    grid = int(round(positions**0.5))
    num_codes, code_dim = _shape(state, "quantize.embedding.weight")
    decoder_width = _shape(state, "decoder.cls_token")[-1]
    teacher_dim = _shape(state, "decode_task_layer.2.weight")[0]
    for name, w, h in (("--heads", width, heads), ("--decoder-heads", decoder_width, decoder_heads)):
        if h < 1 or w % h:
            raise SemtokError(f"{name}: expected a divisor of the checkpoint's width {w}, got {h}")
    if grid * grid != positions or _shape(state, "decoder.pos_embed")[1] - 1 != positions:
        raise SemtokError(
            f"beitv2 checkpoint: {positions} position embeddings do not form the same square grid"
        )
    for prefix, w in (("encoder.", width), ("decoder.", decoder_width)):
        if _shape(state, f"{prefix}blocks.0.mlp.fc1.weight")[0] != 4 * w:
            raise SemtokError(f"beitv2 checkpoint: '{prefix}blocks.0.mlp.fc1.weight' is not 4 x {w} wide")
    teacher = teacher or TEACHERS_BY_DIM.get(teacher_dim)
    if teacher is None:
        raise SemtokError(
            f"--teacher: the checkpoint's {teacher_dim}-d targets match no known teacher; name one"
        )
    if teacher not in TEACHERS:
        raise SemtokError(f"--teacher: unknown teacher {teacher!r}; known: {', '.join(TEACHERS)}")
    depth = _depth(state, "encoder.")
    size = next((n for n, s in VIT_SIZES.items() if s == (width, depth, heads)), None)
    return VQKDConfig(
        image_size=grid * patch,
        patch_size=patch,
        encoder=size or "base",
        encoder_depth=0 if size else depth,
        encoder_width=0 if size else width,
        encoder_heads=0 if size else heads,
        cls_token=True,
        quantizer=VQKDQuantizerConfig(num_codes=num_codes, code_dim=code_dim, dead_code_steps=0),
        decoder_width=decoder_width,
        decoder_depth=_depth(state, "decoder."),
        decoder_heads=decoder_heads,
        decoder_head="tanh_mlp",
        teacher=TeacherConfig(name=teacher, dim=teacher_dim),
    )


def _vit_keys(state: dict, prefix: str, ours: str, depth: int, take) -> dict[str, torch.Tensor]:
    """Our ViT tensors (encoder or feature decoder) from the original's ``prefix`` keys."""
    out = {
        f"{ours}.cls_token": take(f"{prefix}cls_token") + take(f"{prefix}pos_embed")[:, :1],
        f"{ours}.pos_embed.weight": take(f"{prefix}pos_embed")[:, 1:],
        f"{ours}.norm.weight": take(f"{prefix}fc_norm.weight"),
        f"{ours}.norm.bias": take(f"{prefix}fc_norm.bias"),
    }
    for i in range(depth):
        theirs, mine = f"{prefix}blocks.{i}.", f"{ours}.blocks.{i}."
        out.update({mine + m: take(theirs + t) for t, m in BLOCK_KEYS.items()})
        q, v = take(theirs + "attn.q_bias"), take(theirs + "attn.v_bias")
        out[mine + "attn.qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
    return out


def convert_beitv2_state(state: dict[str, torch.Tensor], config: VQKDConfig) -> dict[str, torch.Tensor]:
    """Our VQ-KD state dict from the original's tensors; every original key is used exactly once (a missing or an
    unexpected one is a SemtokError naming it)."""
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise SemtokError(f"beitv2 checkpoint: missing key '{key}'")
        used.add(key)
        return state[key].float()

    out = _vit_keys(state, "encoder.", "encoder", config.encoder_shape[1], take)
    out["encoder.patch_embed.weight"] = take("encoder.patch_embed.proj.weight")
    out["encoder.patch_embed.bias"] = take("encoder.patch_embed.proj.bias")
    out.update(_vit_keys(state, "decoder.", "decoder", config.decoder_depth, take))
    out["decoder.embed.weight"] = take("decoder.patch_embed.proj.weight").flatten(1)
    out["decoder.embed.bias"] = take("decoder.patch_embed.proj.bias")
    for i in (0, 2):
        for p in ("weight", "bias"):
            out[f"task_head.{i}.{p}"] = take(f"encode_task_layer.{i}.{p}")
            out[f"decoder.head.{i}.{p}"] = take(f"decode_task_layer.{i}.{p}")
    codebook = take("quantize.embedding.weight")
    if (codebook.norm(dim=1) - 1).abs().max() > 1e-3:
        raise SemtokError("beitv2 checkpoint: 'quantize.embedding.weight' rows are not unit vectors")
    if not bool(take("quantize.embedding.initted").all()):
        raise SemtokError("beitv2 checkpoint: 'quantize.embedding.initted' is false (an untrained codebook)")
    take("quantize.embedding.cluster_size")  # never updated by the original (its usage EMA is below)
    take("quantize.embedding.embed_avg")  # likewise unused by NormEMAVectorQuantizer
    count = take("quantize.cluster_size").clamp_min(1.0)
    out.update(
        {
            "quantizer.codebook": codebook,
            "quantizer.ema_count": count,
            "quantizer.ema_sum": codebook * count[:, None],
            "quantizer.steps_unused": torch.zeros(codebook.shape[0], dtype=torch.long),
            "quantizer.initialized": torch.tensor(True),
        }
    )
    unexpected = sorted(set(state) - used)
    if unexpected:
        raise SemtokError(f"beitv2 checkpoint: unexpected key '{unexpected[0]}'")
    return out


def import_beitv2(
    path: str | Path,
    out: str | Path,
    heads: int = 12,
    decoder_heads: int = 12,
    teacher: str | None = None,
) -> VQKDTokenizer:
    """Convert the BEiT v2 VQ-KD file ``path`` into a semtok VQ-KD tokenizer folder ``out`` (``save_pretrained``
    layout); returns the tokenizer. Its ``encode`` gives the original's ``get_codebook_indices`` ids."""
    state = load_beitv2_state(path)
    config = beitv2_config(state, heads, decoder_heads, teacher)
    converted = convert_beitv2_state(state, config)
    tokenizer = VQKDTokenizer(config)
    expected = tokenizer.state_dict()
    for key in expected:
        if key not in converted or converted[key].shape != expected[key].shape:
            raise SemtokError(
                f"beitv2 checkpoint: no tensor of shape {list(expected[key].shape)} for '{key}'"
            )
    tokenizer.load_state_dict(converted, strict=True)
    tokenizer.info = {"imported_from": {"source": "beitv2", "file": Path(path).name}}
    tokenizer.eval()
    tokenizer.save_pretrained(out)
    return tokenizer
