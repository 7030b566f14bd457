"""`semtok import beitv2`: a random checkpoint in the original BEiT v2 VQ-KD key layout, imported and checked against
a plain-torch re-implementation of the original's encode + quantize (modeling_vqkd / norm_ema_quantizer /
modeling_finetune semantics), then through evaluate, tokenize and train decoder."""

import json
import pickle

import pytest
import torch
import torch.nn.functional as F

from semtok.cli import main
from semtok.errors import SemtokError
from semtok.tokenizers import Tokenizer
from semtok.tokenizers.import_beitv2 import import_beitv2

WIDTH, HEADS, PATCH, GRID, CODES, CODE_DIM = 32, 2, 8, 4, 16, 8  # 32 px images, 4x4 tokens
# what the shapes cannot tell; the teacher that works offline (EfficientNet-Lite0, 112-d at stride 16)
TINY_ARGS = ["--heads", "2", "--decoder-heads", "2", "--teacher", "effnet-lite0"]


def _vit_state(g: torch.Generator, prefix: str, in_chans: int, patch: int, depth: int, width: int) -> dict:
    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    state = {
        f"{prefix}cls_token": r(1, 1, width),
        f"{prefix}pos_embed": r(1, GRID * GRID + 1, width),
        f"{prefix}patch_embed.proj.weight": r(width, in_chans, patch, patch),
        f"{prefix}patch_embed.proj.bias": r(width),
        f"{prefix}fc_norm.weight": 1 + r(width),
        f"{prefix}fc_norm.bias": r(width),
    }
    for i in range(depth):
        b = f"{prefix}blocks.{i}."
        state.update(
            {
                b + "norm1.weight": 1 + r(width),
                b + "norm1.bias": r(width),
                b + "attn.q_bias": r(width),
                b + "attn.v_bias": r(width),
                b + "attn.qkv.weight": r(3 * width, width),
                b + "attn.proj.weight": r(width, width),
                b + "attn.proj.bias": r(width),
                b + "norm2.weight": 1 + r(width),
                b + "norm2.bias": r(width),
                b + "mlp.fc1.weight": r(4 * width, width),
                b + "mlp.fc1.bias": r(4 * width),
                b + "mlp.fc2.weight": r(width, 4 * width),
                b + "mlp.fc2.bias": r(width),
            }
        )
    return state


def beitv2_state(teacher_dim: int = 112, seed: int = 0) -> dict:
    """Random tensors in the key layout and shapes of a beit2 VQKD checkpoint (tiny sizes)."""
    g = torch.Generator().manual_seed(seed)
    state = {
        **_vit_state(g, "encoder.", 3, PATCH, 2, WIDTH),
        **_vit_state(g, "decoder.", CODE_DIM, 1, 1, WIDTH),
    }
    for name, out in (("encode_task_layer", CODE_DIM), ("decode_task_layer", teacher_dim)):
        state[f"{name}.0.weight"] = torch.randn(WIDTH, WIDTH, generator=g) * 0.2
        state[f"{name}.0.bias"] = torch.randn(WIDTH, generator=g) * 0.2
        state[f"{name}.2.weight"] = torch.randn(out, WIDTH, generator=g) * 0.2
        state[f"{name}.2.bias"] = torch.randn(out, generator=g) * 0.2
    codebook = F.normalize(torch.randn(CODES, CODE_DIM, generator=g), dim=-1)
    state.update(
        {
            "quantize.embedding.weight": codebook,
            "quantize.embedding.cluster_size": torch.zeros(CODES),
            "quantize.embedding.embed_avg": codebook.clone(),
            "quantize.embedding.initted": torch.tensor([1.0]),
            "quantize.cluster_size": torch.rand(CODES, generator=g) * 10,
            "scaling_layer.shift": torch.zeros(1, 3, 1, 1),  # dropped, as the original's loader does
            "teacher_model.visual.proj": torch.zeros(WIDTH, 4),
        }
    )
    return state


def _original_vit(state: dict, prefix: str, x_BCHW: torch.Tensor, heads: int) -> torch.Tensor:
    """modeling_finetune.VisionTransformer(use_mean_pooling=True, init_values=0) -> patch tokens after fc_norm."""
    s = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    x = F.conv2d(
        x_BCHW,
        s["patch_embed.proj.weight"],
        s["patch_embed.proj.bias"],
        stride=s["patch_embed.proj.weight"].shape[-1],
    )
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([s["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + s["pos_embed"]
    B, N, C = x.shape
    for i in range(len({k.split(".")[1] for k in s if k.startswith("blocks.")})):
        b = lambda name, i=i: s[f"blocks.{i}.{name}"]  # noqa: E731
        h = F.layer_norm(x, (C,), b("norm1.weight"), b("norm1.bias"), eps=1e-6)
        bias = torch.cat([b("attn.q_bias"), torch.zeros_like(b("attn.v_bias")), b("attn.v_bias")])
        qkv = F.linear(h, b("attn.qkv.weight"), bias).reshape(B, N, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (C // heads) ** -0.5, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x = x + F.linear(
            (attn @ v).transpose(1, 2).reshape(B, N, C), b("attn.proj.weight"), b("attn.proj.bias")
        )
        h = F.layer_norm(x, (C,), b("norm2.weight"), b("norm2.bias"), eps=1e-6)
        h = F.linear(
            F.gelu(F.linear(h, b("mlp.fc1.weight"), b("mlp.fc1.bias"))),
            b("mlp.fc2.weight"),
            b("mlp.fc2.bias"),
        )
        x = x + h
    return F.layer_norm(x[:, 1:], (C,), s["fc_norm.weight"], s["fc_norm.bias"], eps=1e-6)


def _task_layer(state: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    x = torch.tanh(F.linear(x, state[f"{name}.0.weight"], state[f"{name}.0.bias"]))
    return F.linear(x, state[f"{name}.2.weight"], state[f"{name}.2.bias"])


def original_codes(state: dict, images01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """VQKD.get_codebook_indices on [0, 1] images (pre_process: *255 / 127.5 - 1), and VQKD.decode of its codes."""
    x = images01 * 255.0 / 127.5 - 1.0 if images01.max() <= 1.0 else images01
    z = F.normalize(
        _task_layer(state, "encode_task_layer", _original_vit(state, "encoder.", x, HEADS)), dim=-1
    )
    e = state["quantize.embedding.weight"]
    d = z.pow(2).sum(-1, keepdim=True) + e.pow(2).sum(1) - 2 * torch.einsum("bnd,kd->bnk", z, e)
    ids = d.argmin(-1)
    quantized = F.embedding(ids, e).transpose(1, 2).reshape(ids.shape[0], CODE_DIM, GRID, GRID)
    rec = _task_layer(state, "decode_task_layer", _original_vit(state, "decoder.", quantized, HEADS))
    return ids.view(-1, GRID, GRID), rec


def _save(state: dict, path) -> str:
    torch.save({"model": state, "epoch": 99}, path)
    return str(path)


def test_imported_codes_equal_the_original(tmp_path):
    state = beitv2_state()
    path = _save(state, tmp_path / "vqkd.pth")
    assert main(["import", "beitv2", path, "--out", str(tmp_path / "tok"), *TINY_ARGS]) == 0
    tokenizer = Tokenizer.from_pretrained(tmp_path / "tok")
    assert tokenizer.kind == "vqkd" and tokenizer.num_codes == CODES and tokenizer.grid_size == (GRID, GRID)
    assert tokenizer.config.image_size == 32 and tokenizer.config.teacher.dim == 112
    images01 = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected_ids, expected_rec = original_codes(state, images01)
    ids = tokenizer.encode(images01 * 2 - 1)
    assert torch.equal(ids, expected_ids)
    assert len(ids.unique()) > 3  # the check is not vacuous
    decoded = tokenizer.decode_features(ids)  # [B, 112, h, w]
    torch.testing.assert_close(decoded.flatten(2).transpose(1, 2), expected_rec, atol=1e-5, rtol=1e-5)


def test_default_teacher_from_the_target_dim(tmp_path):
    tokenizer = import_beitv2(
        _save(beitv2_state(512), tmp_path / "c.pth"), tmp_path / "c", heads=2, decoder_heads=2
    )
    assert (
        tokenizer.config.teacher.name == "clip-vit-b16"
        and tokenizer.info["imported_from"]["source"] == "beitv2"
    )


@pytest.mark.slow
def test_imported_folder_evaluates_tokenizes_and_trains_a_decoder(image_folder, tmp_path, capsys):
    path = _save(beitv2_state(), tmp_path / "vqkd.pth")
    tok = str(tmp_path / "tok")
    assert main(["import", "beitv2", path, "--out", tok, *TINY_ARGS]) == 0
    out = tmp_path / "eval.json"
    assert (
        main(["evaluate", tok, "--data", str(image_folder), "--no-fid", "--out", str(out), "--no-progress"])
        == 0
    )
    result = json.loads(out.read_text())
    assert result["kind"] == "vqkd" and result["images"] == 6 and -1 <= result["teacher_cosine"] <= 1
    assert (
        main(
            ["tokenize", tok, "--data", str(image_folder), "--out", str(tmp_path / "tokens"), "--no-progress"]
        )
        == 0
    )
    assert (tmp_path / "tokens.json").exists()
    overrides = [
        "decoder.conv.channels=8",
        "decoder.conv.channel_mult=[1, 2, 2, 2]",  # 4x4 codes -> 32 px
        "decoder.conv.z_channels=8",
        "train.steps=1",
        "train.batch_size=2",
        "train.warmup_steps=1",
        "train.checkpoint_every=1",
        "loss.disc_start=0",
        "loss.disc_channels=8",
        "loss.disc_layers=1",
        "loss.perceptual_weight=0",  # the perceptual loss has its own tests; keep this one short
    ]
    argv = [
        "train",
        "decoder",
        "--tokenizer",
        tok,
        "--data",
        str(image_folder),
        "--out",
        str(tmp_path / "dec"),
        "--no-progress",
    ]
    assert main(argv + [a for o in overrides for a in ("--set", o)]) == 0
    trained = Tokenizer.from_pretrained(tmp_path / "dec" / "tokenizer")
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(trained.encode(images), Tokenizer.from_pretrained(tok).encode(images))
    assert trained.decode(trained.encode(images)).shape == (2, 3, 32, 32)
    # the recorded teacher's weights are not on this machine: evaluate says so instead of failing
    config = json.loads((tmp_path / "tok" / "config.json").read_text())
    config["config"]["teacher"]["weights"] = str(tmp_path / "not-here.pth")
    (tmp_path / "tok" / "config.json").write_text(json.dumps(config))
    assert (
        main(["evaluate", tok, "--data", str(image_folder), "--no-fid", "--out", str(out), "--no-progress"])
        == 0
    )
    result = json.loads(out.read_text())
    assert "teacher_cosine" not in result and "unavailable" in result["teacher_cosine_skipped"]


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


def _bad_file(tmp_path, kind: str):
    path = tmp_path / f"{kind}.pth"
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"model": _Evil()}))
    elif kind == "truncated":
        _save(beitv2_state(), path)
        path.write_bytes(path.read_bytes()[:2000])
    elif kind == "other":
        torch.save({"state_dict": {"encoder.conv_in.weight": torch.zeros(1)}}, path)
    elif kind == "missing":
        state = beitv2_state()
        del state["encoder.blocks.1.attn.v_bias"]
        _save(state, path)
    elif kind == "unexpected":
        _save({**beitv2_state(), "encoder.blocks.0.gamma_1": torch.ones(WIDTH)}, path)
    return str(path)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("pickle", "does not load as plain tensors"),
        ("truncated", "does not load as plain tensors"),
        ("other", "expected a BEiT v2 VQ-KD file"),
        ("missing", "missing key 'encoder.blocks.1.attn.v_bias'"),
        ("unexpected", "unexpected key 'encoder.blocks.0.gamma_1'"),
    ],
)
def test_bad_checkpoints_fail_on_one_line(kind, message, tmp_path, capsys):
    path = _bad_file(tmp_path, kind)
    code = main(["import", "beitv2", path, "--out", str(tmp_path / "out"), *TINY_ARGS])
    captured = capsys.readouterr()
    assert code == 2 and message in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "executed" not in captured.out and not (tmp_path / "out").exists()


def test_heads_and_teacher_are_checked(tmp_path):
    path = _save(beitv2_state(), tmp_path / "a.pth")
    with pytest.raises(SemtokError, match="--heads"):
        import_beitv2(path, tmp_path / "a", heads=3, teacher="effnet-lite0")
    with pytest.raises(SemtokError, match="--teacher: the checkpoint's 112-d"):
        import_beitv2(path, tmp_path / "a", heads=2, decoder_heads=2)
    with pytest.raises(SemtokError, match="--teacher: unknown teacher 'nope'"):
        import_beitv2(path, tmp_path / "a", heads=2, decoder_heads=2, teacher="nope")
