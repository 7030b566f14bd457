"""The demo's recipe: its overrides load onto the embedded default's configs, ``--steps`` wins over them, and the
shared configs (the bench suite's) keep their own values."""

from __future__ import annotations

import pytest

from semtok.config import load_config
from semtok.pipelines.demo import RECIPE, stage_overrides
from semtok.training.ar import ARRunConfig
from semtok.training.judge import JudgeRunConfig
from semtok.training.pixel import DecoderRunConfig
from semtok.training.vqkd import VQKDRunConfig

CONFIGS = {
    "vqkd": (VQKDRunConfig, "vqkd-mnist"),
    "decoder": (DecoderRunConfig, "decoder-vqkd-mnist"),
    "ar": (ARRunConfig, "ar-mnist"),
    "judge": (JudgeRunConfig, "judge-mnist"),
}


def test_every_stage_of_the_recipe_has_a_config():
    assert set(RECIPE) == set(CONFIGS)


def test_the_recipe_sets_the_demo_values_and_leaves_the_shared_configs_alone():
    vqkd = load_config(VQKDRunConfig, "vqkd-mnist", stage_overrides("vqkd"))
    assert (vqkd.train.steps, vqkd.train.warmup_steps, vqkd.train.mixed_precision) == (300, 50, "auto")
    decoder = load_config(DecoderRunConfig, "decoder-vqkd-mnist", stage_overrides("decoder"))
    assert (decoder.train.steps, decoder.train.lr, decoder.loss.disc_start) == (300, 1e-3, 150)
    ar = load_config(ARRunConfig, "ar-mnist", stage_overrides("ar"))
    assert (ar.train.steps, ar.train.lr, ar.train.warmup_steps, ar.model.attn_dropout) == (400, 2e-3, 60, 0.0)
    # the suite's recipes: what `semtok bench` trains with its own step budgets
    shared = load_config(DecoderRunConfig, "decoder-vqkd-mnist", [])
    assert (shared.train.lr, shared.loss.disc_start) == (2e-4, 300)
    assert load_config(VQKDRunConfig, "vqkd-mnist", []).train.mixed_precision == "no"


@pytest.mark.parametrize("stage", sorted(CONFIGS))
def test_steps_override_every_stage(stage):
    config_class, name = CONFIGS[stage]
    assert load_config(config_class, name, stage_overrides(stage, 3)).train.steps == 3


def test_the_seed_reaches_every_trained_stage_and_not_the_judge():
    for stage in ("vqkd", "decoder", "ar"):
        config_class, name = CONFIGS[stage]
        assert load_config(config_class, name, stage_overrides(stage, None, 2)).train.seed == 2
    judge_default = load_config(JudgeRunConfig, "judge-mnist", []).train.seed
    assert (
        load_config(JudgeRunConfig, "judge-mnist", stage_overrides("judge", None, 2)).train.seed
        == judge_default
    )


def test_the_report_puts_the_demo_beside_every_row_of_the_suite(tmp_path):
    import json

    from semtok.pipelines.demo import suite_comparison
    from semtok.pipelines.suite_reference import load_reference

    for stage, steps in (("vqkd", 300), ("decoder", 300), ("ar", 400)):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "summary.json").write_text(json.dumps({"steps": steps}))
    lines = suite_comparison(tmp_path, {"rfid": 37.57}, {"gfid": 46.69, "class_accuracy": 0.61})
    demo = next(line for line in lines if "this demo" in line)
    assert "| 300/300/400 | 37.57 |" in demo and "**46.69**" in demo and "**0.610**" in demo
    reference = load_reference()
    assert reference is not None  # shipped with the package
    for row in reference["rows"]:
        assert any(line.startswith(f"| {row['label']} |") for line in lines), row["label"]
    cluster = suite_comparison(tmp_path, {}, {}, "cluster")
    assert "| k-means/300/400 | n/a |" in next(line for line in cluster if "this demo" in line)
