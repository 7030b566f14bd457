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
    ConvNetConfig,
    CVQConfig,
    CVQQuantizerConfig,
    CVQTokenizer,
    DecoderConvConfig,
    FSQConfig,
    FSQTokenizer,
    PixelDecoderConfig,
    Tokenizer,
    VQKDConfig,
    VQKDQuantizerConfig,
    VQKDTokenizer,
)
from semtok.training.vqkd import VQKDRunConfig

# config.json "config" mappings exactly as the code before the sections wrote them
OLD_PIXEL_DECODER = {
    "code_dim": 8, "grid": 4, "image_size": 32, "channels": 8, "channel_mult": [1, 2, 2, 2], "num_res_blocks": 1,
    "z_channels": 8, "attn_resolutions": [],
}  # fmt: skip
OLD_VQKD = {
    "image_size": 32, "patch_size": 8, "encoder": "tiny", "encoder_depth": 1, "code_dim": 8, "num_codes": 16,
    "distance": "cosine", "ema_decay": 0.99, "kmeans_init": True, "kmeans_iters": 10, "commitment_weight": 1.0,
    "dead_code_steps": 100, "decoder_width": 32, "decoder_depth": 1, "decoder_heads": 2, "teacher": "effnet-lite0",
    "teacher_weights": None, "teacher_random_init": False, "teacher_input_size": 0, "teacher_stride": 0,
    "teacher_dim": 112, "pixel_decoder": OLD_PIXEL_DECODER,
}  # fmt: skip
OLD_CVQ = {
    "image_size": 32, "channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "z_channels": 8,
    "attn_resolutions": [], "code_dim": 6, "num_codes": 16, "distance": "cosine", "ema_decay": 0.99,
    "kmeans_init": True, "kmeans_iters": 10, "commitment_weight": 0.25, "dead_code_steps": 20,
}  # fmt: skip
OLD_FSQ = {
    "image_size": 32, "channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "z_channels": 8,
    "attn_resolutions": [], "levels": [4, 3],
}  # fmt: skip
OLD_CLUSTER = {
    "image_size": 32, "teacher": "effnet-lite0", "teacher_weights": None, "teacher_input_size": 64,
    "teacher_stride": 16, "feature_dim": 112, "num_codes": 16, "kmeans_iters": 20, "kmeans_seed": 0,
    "pixel_decoder": None,
}  # fmt: skip
FLAT_KEYS = {
    "teacher_weights", "teacher_random_init", "teacher_input_size", "teacher_stride", "teacher_dim", "feature_dim",
    "code_dim", "num_codes", "distance", "ema_decay", "kmeans_init", "kmeans_iters", "commitment_weight",
    "dead_code_steps", "channels", "channel_mult", "num_res_blocks", "z_channels", "attn_resolutions",
}  # fmt: skip
TINY_NET = ConvNetConfig(channels=8, channel_mult=(1, 2), num_res_blocks=1, z_channels=8, attn_resolutions=())


def _model(kind: str) -> tuple[Tokenizer, dict, set[str]]:
    """A tiny tokenizer of ``kind``, its config as the old code saved it, and the sections the new one has."""
    if kind == "vqkd":
        decoder = PixelDecoderConfig(
            code_dim=8, grid=4, image_size=32,
            conv=DecoderConvConfig(channels=8, channel_mult=(1, 2, 2, 2), num_res_blocks=1, z_channels=8),
        )  # fmt: skip
        config = VQKDConfig(
            image_size=32, patch_size=8, encoder="tiny", encoder_depth=1,
            quantizer=VQKDQuantizerConfig(code_dim=8, num_codes=16), decoder_width=32, decoder_heads=2,
            teacher=TeacherConfig(name="effnet-lite0", dim=112), pixel_decoder=decoder,
        )  # fmt: skip
        return VQKDTokenizer(config), OLD_VQKD, {"quantizer", "teacher", "pixel_decoder"}
    if kind == "cvq":
        config = CVQConfig(
            image_size=32, quantizer=CVQQuantizerConfig(code_dim=6, num_codes=16), conv=TINY_NET
        )
        return CVQTokenizer(config), OLD_CVQ, {"quantizer", "conv"}
    if kind == "fsq":
        return FSQTokenizer(FSQConfig(image_size=32, levels=(4, 3), conv=TINY_NET)), OLD_FSQ, {"conv"}
    config = ClusterConfig(
        image_size=32,
        teacher=ClusterTeacherConfig(name="effnet-lite0", input_size=64, stride=16, dim=112),
        num_codes=16,
    )
    return ClusterTokenizer(config), OLD_CLUSTER, {"teacher"}


@pytest.mark.parametrize("kind", ["vqkd", "cluster", "cvq", "fsq"])
def test_old_flat_layout_folder_loads(tmp_path: Path, kind: str):
    torch.manual_seed(0)
    model, old, sections = _model(kind)
    model.eval().save_pretrained(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "config.json").read_text())
    meta["config"] = old  # the folder as the code before the sections wrote it
    (tmp_path / "old" / "config.json").write_text(json.dumps(meta))
    loaded = Tokenizer.from_pretrained(tmp_path / "old")
    assert type(loaded) is type(model) and loaded.config == model.config
    expected, got = model.state_dict(), loaded.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    # saved again, it is in the new layout
    loaded.save_pretrained(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "config.json").read_text())["config"]
    assert {k for k, v in saved.items() if isinstance(v, dict)} == sections
    assert not FLAT_KEYS & (set(saved) - ({"num_codes", "kmeans_iters"} if kind == "cluster" else set()))
    if kind == "vqkd":
        assert set(saved["pixel_decoder"]) == {"code_dim", "grid", "image_size", "conv"}


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


def test_conv_section_keys():
    from semtok.training.pixel import RUN_CONFIGS

    fsq = load_config(RUN_CONFIGS["fsq"], "fsq-mnist", ["model.conv.channels=16"]).model
    assert fsq.conv == ConvNetConfig(
        channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=32, attn_resolutions=()
    )
    assert fsq.factor == 4
    decoder = load_config(RUN_CONFIGS["decoder"], "decoder-vqkd-mnist", ["decoder.conv.z_channels=8"]).decoder
    assert decoder.conv == DecoderConvConfig(
        channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=8
    )
    assert PixelDecoderConfig().conv.attn_resolutions == () and ConvNetConfig().attn_resolutions == (16,)
    with pytest.raises(SemtokError, match="config key 'model.conv.channels'"):
        load_config(RUN_CONFIGS["vqgan"], "vqgan-mnist", ["model.conv.channels=0"])
    with pytest.raises(SemtokError, match="config key 'model.channels' is unknown"):
        load_config(RUN_CONFIGS["vqgan"], "vqgan-mnist", ["model.channels=16"])


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


def test_cluster_build_leaves_the_callers_config_alone(image_folder: Path, tmp_path: Path):
    import copy

    import yaml

    from semtok.tokenizers.cluster_build import ClusterRunConfig, build_cluster_tokenizer

    overrides = ["model.teacher.input_size=64", "model.num_codes=16", "model.kmeans_iters=2", "build.seed=3"]
    config = load_config(ClusterRunConfig, "cluster-mnist", [*overrides, f"data.dataset={image_folder}"])
    before = copy.deepcopy(config)
    build_cluster_tokenizer(config, tmp_path / "out", progress=False)
    assert config == before and config.model.teacher.dim == 0 and config.model.kmeans_seed == 0
    built = Tokenizer.from_pretrained(
        tmp_path / "out"
    ).config  # the build's own resolved copy is what is saved
    assert (built.teacher.dim, built.kmeans_seed) == (112, 3)
    saved = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["model"]
    assert (saved["teacher"]["dim"], saved["kmeans_seed"]) == (112, 3)
