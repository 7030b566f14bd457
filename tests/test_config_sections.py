"""The shared config sections (``model.teacher``, ...) and the upgrade of folders saved with the old flat keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from semtok.config import load_config
from semtok.errors import SemtokError
from semtok.teachers import ClusterTeacherConfig, TeacherConfig
from semtok.tokenizers import (
    ClusterConfig,
    ClusterTokenizer,
    CVQConfig,
    CVQQuantizerConfig,
    CVQTokenizer,
    Tokenizer,
    VQKDConfig,
    VQKDQuantizerConfig,
    VQKDTokenizer,
)
from semtok.training.vqkd import VQKDRunConfig

# config.json "config" mappings exactly as the code before the sections wrote them
OLD_VQKD = {
    "image_size": 32, "patch_size": 8, "encoder": "tiny", "encoder_depth": 1, "code_dim": 8, "num_codes": 16,
    "distance": "cosine", "ema_decay": 0.99, "kmeans_init": True, "kmeans_iters": 10, "commitment_weight": 1.0,
    "dead_code_steps": 100, "decoder_width": 32, "decoder_depth": 1, "decoder_heads": 2, "teacher": "effnet-lite0",
    "teacher_weights": None, "teacher_random_init": False, "teacher_input_size": 0, "teacher_stride": 0,
    "teacher_dim": 112, "pixel_decoder": None,
}  # fmt: skip
OLD_CVQ = {
    "image_size": 32, "channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "z_channels": 8,
    "attn_resolutions": [], "code_dim": 6, "num_codes": 16, "distance": "cosine", "ema_decay": 0.99,
    "kmeans_init": True, "kmeans_iters": 10, "commitment_weight": 0.25, "dead_code_steps": 20,
}  # fmt: skip
OLD_CLUSTER = {
    "image_size": 32, "teacher": "effnet-lite0", "teacher_weights": None, "teacher_input_size": 64,
    "teacher_stride": 16, "feature_dim": 112, "num_codes": 16, "kmeans_iters": 20, "kmeans_seed": 0,
    "pixel_decoder": None,
}  # fmt: skip


def _as_old_folder(model: Tokenizer, folder: Path, old_config: dict) -> Path:
    model.save_pretrained(folder)
    meta = json.loads((folder / "config.json").read_text())
    meta["config"] = old_config
    (folder / "config.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("kind", ["vqkd", "cluster", "cvq"])
def test_old_flat_layout_folder_loads(tmp_path: Path, kind: str):
    torch.manual_seed(0)
    if kind == "vqkd":
        config = VQKDConfig(
            image_size=32, patch_size=8, encoder="tiny", encoder_depth=1, quantizer=VQKDQuantizerConfig(code_dim=8, num_codes=16),
            decoder_width=32, decoder_heads=2, teacher=TeacherConfig(name="effnet-lite0", dim=112),
        )  # fmt: skip
        model, old = VQKDTokenizer(config), OLD_VQKD
    elif kind == "cvq":
        config = CVQConfig(
            image_size=32, channels=8, channel_mult=(1, 2), num_res_blocks=1, z_channels=8, attn_resolutions=(),
            quantizer=CVQQuantizerConfig(code_dim=6, num_codes=16),
        )  # fmt: skip
        model, old = CVQTokenizer(config), OLD_CVQ
    else:
        config = ClusterConfig(
            image_size=32,
            teacher=ClusterTeacherConfig(name="effnet-lite0", input_size=64, stride=16, dim=112),
            num_codes=16,
        )
        model, old = ClusterTokenizer(config), OLD_CLUSTER
    folder = _as_old_folder(model.eval(), tmp_path / "old", old)
    loaded = Tokenizer.from_pretrained(folder)
    assert type(loaded) is type(model) and loaded.config == config
    expected, got = model.state_dict(), loaded.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    # saved again, it is in the new layout
    loaded.save_pretrained(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "config.json").read_text())["config"]
    assert "code_dim" not in saved and "teacher_dim" not in saved and "feature_dim" not in saved
    assert isinstance(saved.get("quantizer", {}), dict) and isinstance(saved.get("teacher", {}), dict)
    assert ("quantizer" in saved) == (kind != "cluster") and ("teacher" in saved) == (kind != "cvq")


def test_quantizer_section_keys():
    from semtok.training.pixel import RUN_CONFIGS

    vqgan = load_config(RUN_CONFIGS["vqgan"], "vqgan-mnist", ["model.quantizer.num_codes=32"]).model.quantizer
    assert (vqgan.num_codes, vqgan.code_dim, vqgan.distance, vqgan.commitment_weight) == (32, 32, "l2", 0.25)
    # a partial section keeps the tokenizer's own defaults for the other keys
    assert load_config(RUN_CONFIGS["cvq"], None, ["model.quantizer.num_codes=8"]).model.quantizer == (
        CVQQuantizerConfig(num_codes=8)
    )
    assert (CVQQuantizerConfig().distance, CVQQuantizerConfig().dead_code_steps) == ("cosine", 20)
    assert VQKDConfig().quantizer == VQKDQuantizerConfig(num_codes=8192, code_dim=32, dead_code_steps=100)
    with pytest.raises(SemtokError, match="config key 'model.num_codes' is unknown"):
        load_config(VQKDRunConfig, "vqkd-mnist", ["model.num_codes=64"])
    with pytest.raises(SemtokError, match="config key 'model.quantizer.code_dim'"):
        load_config(RUN_CONFIGS["vqgan"], "vqgan-mnist", ["model.quantizer.code_dim=0"])


def test_teacher_section_keys():
    config = load_config(VQKDRunConfig, "vqkd-mnist", ["model.teacher.name=effnet-lite2"])
    assert config.model.teacher == TeacherConfig(name="effnet-lite2", input_size=128, stride=16)
    assert (
        ClusterConfig().teacher.name == "clip-vit-b16-preproj" and VQKDConfig().teacher.name == "clip-vit-b16"
    )
    with pytest.raises(SemtokError, match="config key 'model.teacher': expected a mapping"):
        load_config(VQKDRunConfig, "vqkd-mnist", ["model.teacher=effnet-lite2"])
    with pytest.raises(SemtokError, match="config key 'model.teacher_input_size' is unknown"):
        load_config(VQKDRunConfig, "vqkd-mnist", ["model.teacher_input_size=64"])
    with pytest.raises(SemtokError, match="config key 'model.teacher.stride'"):
        load_config(VQKDRunConfig, "vqkd-mnist", ["model.teacher.stride=-1"])
