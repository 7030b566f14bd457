from dataclasses import dataclass, field

import pytest

from semtok.config import apply_overrides, from_dict, load_config, named_configs, to_dict
from semtok.errors import SemtokError
from semtok.training.vqkd import VQKDRunConfig


@dataclass
class Inner:
    size: int = 1
    rate: float = 0.5
    name: str = "a"
    flag: bool = False
    pair: tuple[float, float] = (0.1, 1.0)
    path: str | None = None


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)


def test_named_configs_load_and_round_trip():
    assert {"vqkd-mnist", "vqkd-clip-in1k"} <= set(named_configs())
    for name in ("vqkd-mnist", "vqkd-clip-in1k"):
        config = load_config(VQKDRunConfig, name)
        assert from_dict(VQKDRunConfig, to_dict(config)) == config


def test_paper_recipe_matches_design():
    config = load_config(VQKDRunConfig, "vqkd-clip-in1k")
    m, t, q = config.model, config.train, config.model.quantizer
    assert (m.image_size, m.patch_size, m.encoder, q.code_dim, q.num_codes) == (224, 16, "base", 32, 8192)
    assert (q.distance, q.ema_decay, q.kmeans_iters, q.commitment_weight) == ("cosine", 0.99, 10, 1.0)
    assert (m.decoder_depth, m.decoder_width, m.decoder_heads, m.teacher.name) == (1, 768, 12, "clip-vit-b16")
    assert (t.lr, t.weight_decay, t.betas, t.warmup_steps, t.min_lr) == (2e-4, 1e-4, (0.9, 0.99), 25000, 1e-5)
    assert (t.steps, t.batch_size, config.data.augment, config.data.crop_scale) == (
        250000,
        512,
        "crop_flip",
        (0.08, 1.0),
    )


def test_overrides_are_typed():
    config = from_dict(Outer, apply_overrides({}, ["inner.size=3", "inner.rate=1e-3", "inner.flag=true"]))
    assert config.inner.size == 3 and config.inner.rate == 1e-3 and config.inner.flag is True
    config = from_dict(Outer, apply_overrides({}, ["inner.pair=[0.5, 1]", "inner.path=/x"]))
    assert config.inner.pair == (0.5, 1.0) and config.inner.path == "/x"


@pytest.mark.parametrize(
    "override, message",
    [
        ("inner.sise=3", "'inner.sise' is unknown"),
        ("inner.size=three", "'inner.size': expected an integer"),
        ("inner.size=1.5", "'inner.size': expected an integer"),
        ("inner.flag=maybe", "'inner.flag': expected true or false"),
        ("inner.pair=[1, 2, 3]", "'inner.pair': expected 2 values"),
        ("nope=1", "'nope' is unknown"),
        ("inner", "expected key=value"),
    ],
)
def test_bad_keys_name_the_key(override, message):
    with pytest.raises(SemtokError, match=message):
        from_dict(Outer, apply_overrides({}, [override]))


def test_bad_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(SemtokError, match="not valid YAML"):
        load_config(VQKDRunConfig, str(bad))
    with pytest.raises(SemtokError, match="neither a YAML file nor a named config"):
        load_config(VQKDRunConfig, "no-such-config")
    with pytest.raises(SemtokError, match="model.quantizer.distance"):
        load_config(VQKDRunConfig, "vqkd-mnist", ["model.quantizer.distance=manhattan"])
