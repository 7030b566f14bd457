"""`semtok import taming|llamagen`: public checkpoint layouts -> semtok tokenizers that compute the original function.

Each test writes a checkpoint with random weights in the original key layout (taming-transformers
``taming/modules/diffusionmodules/model.py`` + ``vqgan.py``; LlamaGen ``tokenizer/tokenizer_image/vq_model.py``) at a
tiny size, imports it, and compares with ``reference_forward`` below: the original forward written from those
sources' semantics in plain torch.nn.functional, reading the original key names.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from semtok.cli import main
from semtok.tokenizers import Tokenizer
from semtok.tokenizers.importers import import_llamagen, import_taming

CH, MULT, BLOCKS, Z, EMBED, CODES = 32, (1, 2), 1, 8, 8, 16


def names(style: str, levels: int) -> dict:
    """Module names of the original layouts: encoder level i, decoder level i (0 = full resolution), mid parts."""
    if style == "taming":
        return {
            "enc": lambda i: f"encoder.down.{i}",
            "dec": lambda i: f"decoder.up.{i}",
            "res": "block",
            "mid": ("block_1", "attn_1", "block_2"),
        }
    return {
        "enc": lambda i: f"encoder.conv_blocks.{i}",
        "dec": lambda i: f"decoder.conv_blocks.{levels - 1 - i}",
        "res": "res",
        "mid": ("0", "1", "2"),
    }


def original_layout(style: str, attn_levels=(1,)) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the original model (its constructors' channel bookkeeping), at the tiny size."""
    n, L = names(style, len(MULT)), len(MULT)
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(key, cout, cin, k):
        shapes[f"{key}.weight"], shapes[f"{key}.bias"] = (cout, cin, k, k), (cout,)

    def norm(key, c):
        shapes[f"{key}.weight"], shapes[f"{key}.bias"] = (c,), (c,)

    def resnet(key, cin, cout):
        norm(f"{key}.norm1", cin), conv(f"{key}.conv1", cout, cin, 3)
        norm(f"{key}.norm2", cout), conv(f"{key}.conv2", cout, cout, 3)
        if cin != cout:
            conv(f"{key}.nin_shortcut", cout, cin, 1)

    def attn(key, c):
        norm(f"{key}.norm", c)
        for part in ("q", "k", "v", "proj_out"):
            conv(f"{key}.{part}", c, c, 1)

    def mid(part, c):
        resnet(f"{part}.mid.{n['mid'][0]}", c, c), attn(f"{part}.mid.{n['mid'][1]}", c)
        resnet(f"{part}.mid.{n['mid'][2]}", c, c)

    conv("encoder.conv_in", CH, 3, 3)
    c = CH
    for i in range(L):
        for j in range(BLOCKS):
            resnet(f"{n['enc'](i)}.{n['res']}.{j}", c, CH * MULT[i])
            c = CH * MULT[i]
            if i in attn_levels:
                attn(f"{n['enc'](i)}.attn.{j}", c)
        if i < L - 1:
            conv(f"{n['enc'](i)}.downsample.conv", c, c, 3)
    mid("encoder", c), norm("encoder.norm_out", c), conv("encoder.conv_out", Z, c, 3)
    conv("decoder.conv_in", c, Z, 3), mid("decoder", c)
    for i in reversed(range(L)):
        for b in range(BLOCKS + 1):
            resnet(f"{n['dec'](i)}.{n['res']}.{b}", c, CH * MULT[i])
            c = CH * MULT[i]
            if i in attn_levels:
                attn(f"{n['dec'](i)}.attn.{b}", c)
        if i > 0:
            conv(f"{n['dec'](i)}.upsample.conv", c, c, 3)
    norm("decoder.norm_out", c), conv("decoder.conv_out", 3, c, 3)
    conv("quant_conv", EMBED, Z, 1), conv("post_quant_conv", Z, EMBED, 1)
    shapes["quantize.embedding.weight"] = (CODES, EMBED)
    return shapes


def random_state(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        x = torch.randn(shape, generator=g)
        if len(shape) == 4:  # conv weights: unit-variance outputs
            x = x / (shape[1] * shape[2] * shape[3]) ** 0.5
        elif ".norm" in key and key.endswith(".weight"):
            x = 1 + 0.1 * x
        elif key.endswith(".bias"):
            x = 0.1 * x
        state[key] = x
    return state


# ---------------------------------------------------------------- the original forward, in plain F


def reference_forward(state: dict, style: str, x: torch.Tensor, attn_levels=(1,)) -> tuple[torch.Tensor, ...]:
    """(ids [B, h, w], reconstruction [B, 3, H, W] unclamped) as the original VQModel computes them."""
    n, L = names(style, len(MULT)), len(MULT)
    p = lambda key: (state[f"{key}.weight"], state[f"{key}.bias"])  # noqa: E731
    gn = lambda h, key: F.group_norm(h, 32, *p(key), eps=1e-6)  # noqa: E731
    swish = lambda h: h * torch.sigmoid(h)  # noqa: E731
    conv = lambda h, key, **kw: F.conv2d(h, *p(key), **kw)  # noqa: E731

    def resnet(h, key):
        y = conv(swish(gn(h, f"{key}.norm1")), f"{key}.conv1", padding=1)
        y = conv(swish(gn(y, f"{key}.norm2")), f"{key}.conv2", padding=1)
        return (conv(h, f"{key}.nin_shortcut") if f"{key}.nin_shortcut.weight" in state else h) + y

    def attn(h, key):
        b, c, hh, ww = h.shape
        y = gn(h, f"{key}.norm")
        q, k, v = (conv(y, f"{key}.{s}").reshape(b, c, hh * ww) for s in "qkv")
        w = torch.softmax(torch.bmm(q.permute(0, 2, 1), k) * c**-0.5, dim=2)  # [b, hw_q, hw_k]
        return h + conv(torch.bmm(v, w.permute(0, 2, 1)).reshape(b, c, hh, ww), f"{key}.proj_out")

    def mid(h, part):
        h = resnet(h, f"{part}.mid.{n['mid'][0]}")
        return resnet(attn(h, f"{part}.mid.{n['mid'][1]}"), f"{part}.mid.{n['mid'][2]}")

    h = conv(x, "encoder.conv_in", padding=1)
    for i in range(L):
        for j in range(BLOCKS):
            h = resnet(h, f"{n['enc'](i)}.{n['res']}.{j}")
            h = attn(h, f"{n['enc'](i)}.attn.{j}") if i in attn_levels else h
        if i < L - 1:
            h = conv(F.pad(h, (0, 1, 0, 1)), f"{n['enc'](i)}.downsample.conv", stride=2)
    h = conv(swish(gn(mid(h, "encoder"), "encoder.norm_out")), "encoder.conv_out", padding=1)
    z = conv(h, "quant_conv").permute(0, 2, 3, 1)
    e = state["quantize.embedding.weight"]
    if style == "llamagen":  # codebook_l2_norm
        z, e = F.normalize(z, dim=-1), F.normalize(e, dim=-1)
    flat = z.reshape(-1, e.shape[1])
    d = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()
    ids = d.argmin(1)
    h = conv(e[ids].reshape(z.shape).permute(0, 3, 1, 2), "post_quant_conv")
    h = mid(conv(h, "decoder.conv_in", padding=1), "decoder")
    for i in reversed(range(L)):
        for b in range(BLOCKS + 1):
            h = resnet(h, f"{n['dec'](i)}.{n['res']}.{b}")
            h = attn(h, f"{n['dec'](i)}.attn.{b}") if i in attn_levels else h
        if i > 0:
            h = conv(
                F.interpolate(h, scale_factor=2.0, mode="nearest"), f"{n['dec'](i)}.upsample.conv", padding=1
            )
    out = conv(swish(gn(h, "decoder.norm_out")), "decoder.conv_out", padding=1)
    return ids.reshape(z.shape[:3]), out


# ---------------------------------------------------------------- checkpoint files in the original formats


def taming_checkpoint(path: Path, seed: int = 0) -> dict:
    state = random_state(original_layout("taming"), seed)
    extra = {"loss.discriminator.main.0.weight": torch.randn(4, 3, 4, 4), "loss.logvar": torch.zeros(())}
    torch.save({"state_dict": {**state, **extra}, "epoch": 3, "global_step": 10}, path)
    return state


def llamagen_checkpoint(path: Path, seed: int = 0) -> dict:
    state = random_state(original_layout("llamagen", attn_levels=(len(MULT) - 1,)), seed)
    torch.save({"model": {**state, "quantize.codebook_used": torch.zeros(65536)}}, path)
    return state


SOURCES = {"taming": (taming_checkpoint, import_taming), "llamagen": (llamagen_checkpoint, import_llamagen)}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_imported_tokenizer_computes_the_original_forward(source, tmp_path):
    write, importer = SOURCES[source]
    state = write(tmp_path / "orig.ckpt")
    tokenizer = importer(tmp_path / "orig.ckpt", image_size=16)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ref_ids, ref_out = reference_forward(state, source, x, attn_levels=(1,))
    ids = tokenizer.encode(x)
    assert ids.shape == (3, 8, 8) and torch.equal(ids, ref_ids)
    assert len(ids.unique()) > 1  # a degenerate map would hide a wrong codebook
    recon = tokenizer.decode(ids)
    assert torch.allclose(recon, ref_out.clamp(-1, 1), atol=1e-4), (recon - ref_out.clamp(-1, 1)).abs().max()
    assert (ref_out.abs() < 1).float().mean() > 0.2  # the comparison is not only of clamped values
    assert tokenizer.config.quantizer.distance == ("l2" if source == "taming" else "cosine")


@pytest.mark.slow
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_imported_folder_goes_through_evaluate_and_tokenize(source, tmp_path, image_folder, capsys):
    SOURCES[source][0](tmp_path / "orig.pt")
    out = tmp_path / "tok"
    code = main(["import", source, str(tmp_path / "orig.pt"), "--out", str(out), "--image-size", "32"])
    assert code == 0, capsys.readouterr().err
    assert "not imported" in capsys.readouterr().out
    meta = json.loads((out / "config.json").read_text())
    assert meta["kind"] == "vqgan" and meta["info"]["imported_from"]["file"].endswith("orig.pt")
    tokenizer = Tokenizer.from_pretrained(out)
    assert tokenizer.grid_size == (16, 16) and tokenizer.num_codes == CODES
    report = tmp_path / "eval.json"
    argv = [
        "evaluate",
        str(out),
        "--data",
        str(image_folder),
        "--no-fid",
        "--no-progress",
        "--out",
        str(report),
    ]
    assert main(argv) == 0
    results = json.loads(report.read_text())
    assert 0 < results["usage"] <= 1 and results["num_codes"] == CODES and results["psnr"] > 0, results
    tokens = tmp_path / "tokens"
    argv = ["tokenize", str(out), "--data", str(image_folder), "--out", str(tokens), "--num-workers", "0"]
    assert main([*argv, "--no-progress"]) == 0
    ids = np.load(f"{tokens}.npy", allow_pickle=False)
    assert ids.shape[1:] == (16, 16) and ids.max() < CODES
    assert main(["import", source, str(tmp_path / "orig.pt"), "--out", str(out)]) == 2  # not empty
    assert "--out" in capsys.readouterr().err


class WritesAFile:
    """A pickle whose loading would create a file (if anything executed it)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pwned"))


def bad_inputs(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(source, file, expected message part) of files each importer must refuse on one line."""
    good = tmp_path / "good.ckpt"
    taming_checkpoint(good)
    data = good.read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    torch.save({"state_dict": {"x": WritesAFile(tmp_path / "pwned.txt")}}, tmp_path / "evil.ckpt")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps(WritesAFile(tmp_path / "pwned.txt"), protocol=2))
    torch.save({"optimizer": {"lr": 1.0}}, tmp_path / "other.pt")
    state = torch.load(good, weights_only=True)["state_dict"]
    missing = {k: v for k, v in state.items() if k != "encoder.mid.attn_1.q.weight"}
    torch.save({"state_dict": missing}, tmp_path / "missing.ckpt")
    save_file({**state, "encoder.extra.weight": torch.zeros(2)}, str(tmp_path / "extra.safetensors"))
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "notes.pt").write_text("# a text file, not a checkpoint\n")
    return [
        ("taming", "truncated.ckpt", "truncated or not a torch checkpoint"),
        ("taming", "evil.ckpt", "needs code execution to unpickle (getattr), refused: nothing of it ran"),
        ("llamagen", "plain.pkl", "needs code execution to unpickle"),
        ("llamagen", "other.pt", "holds no state dict: expected a dict with 'model' or 'ema'"),
        ("llamagen", "good.ckpt", "holds no state dict"),  # a taming file given to the LlamaGen importer
        ("taming", "missing.ckpt", "is missing key 'encoder.mid.attn_1.q.weight'"),
        ("taming", "extra.safetensors", "has unexpected key 'encoder.extra.weight'"),
        ("taming", "bad.safetensors", "not a readable safetensors file"),
        ("taming", "nothing.ckpt", "does not exist"),
        ("taming", "notes.pt", "truncated or not a torch checkpoint"),
    ]


def test_bad_checkpoints_fail_on_one_line_and_execute_nothing(tmp_path, capsys):
    for source, name, expected in bad_inputs(tmp_path):
        code = main(["import", source, str(tmp_path / name), "--out", str(tmp_path / f"out-{name}")])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and err.count("\n") == 1, (name, err)
        assert not (tmp_path / f"out-{name}").exists()
    assert not (tmp_path / "pwned.txt").exists()
    pickle.loads((tmp_path / "plain.pkl").read_bytes())  # the payload is live: plain unpickling runs it
    assert (tmp_path / "pwned.txt").read_text() == "pwned"


def test_metadata_globals_of_real_checkpoints_load_as_inert_placeholders(tmp_path, monkeypatch):
    """Lightning 1.x keys ``callbacks`` by the callback class; LlamaGen's training saves an argparse Namespace."""
    import argparse
    import sys
    import types

    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        pass

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = module.__name__, "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    state = random_state(original_layout("taming"))
    callbacks = {ModelCheckpoint: {"best_model_score": torch.tensor(0.5)}}
    torch.save({"state_dict": state, "callbacks": callbacks}, tmp_path / "last.ckpt")
    llamagen = random_state(original_layout("llamagen", attn_levels=(len(MULT) - 1,)))
    torch.save({"model": llamagen, "args": argparse.Namespace(vq_model="VQ-16")}, tmp_path / "vq.pt")
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", module.__name__):
        monkeypatch.delitem(sys.modules, name)  # loading must not need (or import) Lightning
    assert import_taming(tmp_path / "last.ckpt", image_size=16).num_codes == CODES
    assert import_llamagen(tmp_path / "vq.pt", image_size=16).num_codes == CODES


def test_llamagen_file_given_to_taming_names_the_missing_key(tmp_path, capsys):
    llamagen_checkpoint(tmp_path / "vq.pt")
    torch.save(torch.load(tmp_path / "vq.pt", weights_only=True)["model"], tmp_path / "bare.pt")
    assert main(["import", "taming", str(tmp_path / "bare.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "is missing key 'encoder.down.0.block.0.conv1.weight'" in capsys.readouterr().err
