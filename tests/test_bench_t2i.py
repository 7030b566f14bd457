"""The bench suite's text-to-image branch: prompts, configs on captioned data, stage reuse, results, report."""

import dataclasses
import json
import statistics

import pytest
import torch
import yaml
from PIL import Image

import semtok.tokenizers.cluster_build
import semtok.training
from semtok.cli import main
from semtok.data.captioned_mnist import HELD_OUT, caption_for
from semtok.pipelines.report import render_markdown
from semtok.pipelines.report_t2i import t2i_blocks, t2i_table
from semtok.pipelines.stages import Stages
from semtok.pipelines.suite import ROWS, SUITES, collect_row, train_decoder, train_tokenizer
from semtok.pipelines.suite_t2i import (
    CAPTIONED,
    NO_PERCEPTUAL,
    PROMPT_ATTRIBUTES,
    PROMPT_HELD_OUT,
    PROMPTS,
    captioned_judge,
    collect_t2i,
    pixel_loss,
    t2i_results,
    t2i_stages,
)
from test_bench import fake_row
from test_pixel_training import TINY_CONV


def test_prompts_are_eight_seen_then_eight_held_out_pairs():
    assert len(PROMPTS) == 16 == len(set(PROMPTS)) and PROMPT_HELD_OUT == [False] * 8 + [True] * 8
    for (attributes, held), prompt in zip(PROMPT_ATTRIBUTES, PROMPTS, strict=True):
        assert ((attributes.digit, attributes.colour) in HELD_OUT) == held
        assert prompt == caption_for(attributes)
    seen, unseen = PROMPT_ATTRIBUTES[:8], PROMPT_ATTRIBUTES[8:]
    assert [(a.digit, a.size) for a, _ in seen] == [
        (a.digit, a.size) for a, _ in unseen
    ]  # grid columns pair up
    assert SUITES["mnist"].t2i_steps == 1500 and SUITES["quick"].t2i_steps == 40


@pytest.fixture
def captured(monkeypatch):
    """Every training / Cluster build call's config, instead of running it."""
    calls = []
    monkeypatch.setattr(
        semtok.training, "train", lambda stage, config, *a, **k: calls.append((stage, config))
    )
    monkeypatch.setattr(
        semtok.tokenizers.cluster_build, "build_cluster_tokenizer", lambda c, *a: calls.append(("cluster", c))
    )
    return calls


def test_every_main_row_and_the_judges_train_on_the_captioned_data(captured, tmp_path):
    budget = SUITES["quick"]
    main_rows = [row for row, (_, _, _, ablation) in ROWS.items() if not ablation]
    for row in main_rows:
        train_tokenizer(row, tmp_path / row, budget, False, CAPTIONED, pixel_loss(row))
    train_decoder(tmp_path / "vqkd", tmp_path / "decoder", budget, False, CAPTIONED, NO_PERCEPTUAL)
    judge = captioned_judge(tmp_path, budget, Stages(tmp_path / "_shared"), False)
    assert [stage for stage, _ in captured] == ["vqgan", "fsq", "cvq", "vqkd", "cluster", "decoder", "judge"]
    for stage, config in captured:
        assert config.data.dataset == CAPTIONED and config.data.augment == "none", stage
        if stage not in ("cluster", "judge", "decoder"):
            assert config.train.steps == budget.tokenizer_steps
        if stage in ("vqgan", "fsq", "cvq", "decoder"):  # no perceptual term on the captioned data
            assert config.loss.perceptual_weight == 0.0, stage
    assert captured[-1][1].train.steps == budget.judge_steps and judge == tmp_path / "judge_captioned"
    captured.clear()
    train_tokenizer("vqkd-random", tmp_path / "ablation", budget, False)  # the class-conditional default
    assert captured[0][1].data.dataset == "mnist5k" and captured[0][1].model.teacher.random_init


@pytest.mark.slow
def test_train_tokenizer_on_captioned_data(monkeypatch, tmp_path):
    tiny = (*(o for o in TINY_CONV if not o.startswith(("train.steps", "loss.disc"))), "model.levels=[4, 4]")
    monkeypatch.setitem(ROWS, "fsq", ("fsq", "fsq-mnist", (*tiny, "loss.gan_weight=0"), False))
    train_tokenizer(
        "fsq", tmp_path / "run", dataclasses.replace(SUITES["quick"], tokenizer_steps=2), False, CAPTIONED
    )
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (tmp_path / "run" / "tokenizer" / "model.safetensors").is_file()
    assert (
        config["data"]["dataset"] == CAPTIONED and summary["steps"] == 2 and summary["train_images"] == 4500
    )


def test_t2i_stages_reuse_finished_outputs(captured, tmp_path):
    t2i = tmp_path / "vqkd" / "t2i"
    for path in [
        t2i / "tokenizer_run" / "tokenizer" / "model.safetensors",
        t2i / "decoder_run" / "tokenizer" / "model.safetensors",
        t2i / "tokens" / "train.json",
        t2i / "tokens" / "val.json",
        t2i / "ar_run" / "ar" / "model.safetensors",
        t2i / "generation_seed0.json",
        t2i / "samples.png",
    ]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("done")
    stages = Stages(tmp_path / "vqkd")
    t2i_stages(
        "vqkd", tmp_path / "vqkd", stages, SUITES["quick"], tmp_path / "judge_captioned", progress=False
    )
    assert stages.times == {} and captured == []
    (t2i / "decoder_run" / "tokenizer" / "model.safetensors").unlink()  # only the decoder stage is missing
    t2i_stages(
        "vqkd", tmp_path / "vqkd", stages, SUITES["quick"], tmp_path / "judge_captioned", progress=False
    )
    assert list(stages.times) == ["t2i_decoder"] and [stage for stage, _ in captured] == ["decoder"]
    assert captured[0][1].data.dataset == CAPTIONED and captured[0][1].tokenizer == str(t2i / "tokenizer_run")
    assert "t2i_decoder" in json.loads((tmp_path / "vqkd" / "times.json").read_text())


def fake_t2i(row_dir, gfids):
    t2i = row_dir / "t2i"
    (t2i / "ar_run").mkdir(parents=True)
    (t2i / "ar_run" / "summary.json").write_text(json.dumps({"val_nll": 2.5}))
    for seed, gfid in enumerate(gfids):
        metrics = {"gfid": gfid, "precision": 0.5, "recall": 0.4, "prompt_all": 0.3}
        for part, base in (("seen", 0.6), ("held_out", 0.2)):
            metrics |= {f"prompt_{a}_{part}": base + seed / 10 for a in ("digit", "colour", "size", "all")}
        if seed == 1:
            metrics["prompt_digit_held_out"] = None  # a score not measured that seed
        (t2i / f"generation_seed{seed}.json").write_text(json.dumps(metrics))
    (t2i / "samples.png").write_bytes(b"png")
    (t2i / "samples.json").write_text(json.dumps({"prompts": PROMPTS}))


def test_collect_and_report_the_t2i_branch(tmp_path):
    fake_row(tmp_path / "vqkd", [10.0, 12.0])
    fake_t2i(tmp_path / "vqkd" / "seed0", [30.0])  # each chain's branch, scored under its own seed
    fake_t2i(tmp_path / "vqkd" / "seed1", [99.0, 34.0])
    fake_row(tmp_path / "vqkd-random", [11.0])
    vqkd = collect_row("vqkd", tmp_path / "vqkd", (0, 1))
    assert vqkd["t2i_gfid"] == 32.0 and vqkd["t2i_gfid_std"] == pytest.approx(statistics.stdev([30, 34]))
    assert vqkd["t2i_gfid_per_seed"] == [30.0, 34.0] and vqkd["gfid"] == 11.0  # the AR column is untouched
    assert vqkd["t2i_prompt_all_seen"] == pytest.approx(0.65)
    assert vqkd["t2i_prompt_all_held_out"] == pytest.approx(0.25)
    assert vqkd["t2i_prompt_digit_seen"] == vqkd["t2i_prompt_colour_seen"] == vqkd["t2i_prompt_size_seen"]
    assert vqkd["t2i_prompt_digit_held_out"] == 0.2 and vqkd["t2i_prompt_digit_held_out_per_seed"] == [0.2]
    assert vqkd["t2i_prompt_all"] == 0.3 and vqkd["t2i_val_nll"] == 2.5 and vqkd["t2i_prompts"] == PROMPTS
    ablation = collect_row("vqkd-random", tmp_path / "vqkd-random", (0,))
    assert ablation["t2i_gfid"] is None and ablation["t2i_prompt_all_held_out"] is None
    assert ablation["t2i_gfid_per_seed"] == [] and ablation["t2i_prompts"] is None
    assert json.loads(json.dumps(vqkd)) == vqkd

    results = {
        "rows": {"vqkd": vqkd, "vqkd-random": ablation},
        "budget": {"t2i_steps": 40},
        "t2i": t2i_results(None) | {"enabled": True, "judge": {"val_top1": 0.97}},
    }
    header, rows = t2i_table(results)
    assert len(rows) == 2 and rows[0][0] == vqkd["label"] and rows[1][0] == "chance level"  # no ablation row
    assert rows[0][header.index("FID_T2I")] == "32.00 ± 2.83"
    assert rows[0][header.index("all attributes (held-out pairs)")] == "0.250 ± 0.071"
    assert rows[1][1:] == ["–", "0.008", "0.008", "0.100", "0.167", "0.500"]
    markdown = render_markdown(t2i_blocks(tmp_path, results), tmp_path)
    assert "## Text-to-image (captioned MNIST)" in markdown and "| FID_T2I |" in markdown
    assert '16. "a small magenta 7" (held-out pair)' in markdown and "0.970" in markdown
    assert "![VQ-KD (EfficientNet-Lite0), text AR" in markdown and "(vqkd/seed0/t2i/samples.png)" in markdown
    assert "No CLIP score" in markdown and "Mean ± standard deviation over the training seeds" in markdown
    one_seed = {**vqkd, "t2i_gfid_per_seed": [30.0]}
    single = render_markdown(t2i_blocks(tmp_path, {**results, "rows": {"vqkd": one_seed}}), tmp_path)
    assert "One training seed per row so far" in single and "Mean ± standard deviation" not in single
    skipped = render_markdown(t2i_blocks(tmp_path, {**results, "t2i": t2i_results(None)}), tmp_path)
    assert "Not run yet" in skipped and "FID_T2I" not in skipped
    assert t2i_blocks(tmp_path, {**results, "rows": {"vqkd-random": ablation}}) == []


@pytest.mark.parametrize("flag, expected", [([], True), (["--no-t2i"], False)])
def test_bench_no_t2i_flag(flag, expected, monkeypatch, tmp_path):
    import semtok.pipelines.suite

    seen = {}
    monkeypatch.setattr(semtok.pipelines.suite, "run_suite", lambda *a, **k: seen.update(k))
    assert main(["bench", "--quick", "--out", str(tmp_path / "b"), "--rows", "fsq", *flag]) == 0
    assert seen["t2i"] is expected


@pytest.fixture
def one_thread():
    """One torch thread for the test (its many small ops run about 3x slower on 2 threads of a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_t2i_branch_layout_with_a_tiny_tokenizer(one_thread, monkeypatch, tmp_path):
    """The branch end to end for FSQ at 2 tokenizer and 2 text-AR steps (about 40 s on one thread); the generation
    evaluation is replaced by a stand-in that records its call."""
    import semtok.evaluation.generation

    tiny = (*(o for o in TINY_CONV if not o.startswith(("train.steps", "loss.disc"))), "model.levels=[4, 4]")
    monkeypatch.setitem(ROWS, "fsq", ("fsq", "fsq-mnist", (*tiny, "loss.gan_weight=0"), False))
    calls = []

    def evaluate(run_dir, data, split, sampling, seed, judge=None, progress=True, limit=None):
        calls.append((run_dir, data, split, seed, judge, limit))
        return {"gfid": 50.0 + seed, "prompt_all_held_out": 0.1}

    monkeypatch.setattr(semtok.evaluation.generation, "evaluate_generation", evaluate)
    budget = dataclasses.replace(SUITES["quick"], tokenizer_steps=2, t2i_steps=2)
    row_dir, judge = tmp_path / "fsq", tmp_path / "judge_captioned"
    stages = Stages(row_dir)
    t2i_stages("fsq", row_dir, stages, budget, judge, progress=False)
    t2i = row_dir / "t2i"
    expected = ["t2i_tokenizer", "t2i_tokenize_train", "t2i_tokenize_val", "t2i_ar", "t2i_generation_seed0"]
    assert list(stages.times) == [*expected, "t2i_samples"]  # no decoder for FSQ
    assert calls == [(t2i / "ar_run", CAPTIONED, "val", 0, judge, budget.eval_images)]
    for path in ["tokens/train.captions.json", "tokens/val.captions.json", "ar_run/ar/model.safetensors"]:
        assert (t2i / path).is_file(), path
    config = yaml.safe_load((t2i / "ar_run" / "config.yaml").read_text())
    assert config["model"]["text_encoder"] == "minilm-l6" and config["train"]["steps"] == 2
    row = collect_t2i(row_dir, budget.train_seeds)
    assert row["t2i_gfid"] == 50.0 and row["t2i_prompt_all_held_out"] == 0.1 and row["t2i_prompts"] == PROMPTS
    assert row["t2i_prompt_all_seen"] is None and row["t2i_val_nll"] > 0
    with Image.open(t2i / "samples.png") as grid:
        assert grid.size == (2 + 8 * 34, 2 + 2 * 34)  # 16 images of 32 px, 8 per row, 2 px padding
    t2i_stages("fsq", row_dir, Stages(row_dir), budget, judge, progress=False)  # a rerun reuses every stage
    assert len(calls) == 1


@pytest.mark.parametrize(
    "rows, t2i, expected",
    [(["fsq"], True, [None, "judge_captioned"]), (["fsq"], False, [None]), (["vqkd-random"], True, [None])],
)
def test_run_suite_passes_the_captioned_judge_only_when_the_branch_runs(
    rows, t2i, expected, monkeypatch, tmp_path
):
    import semtok.pipelines.report
    import semtok.pipelines.suite

    for judge in ("judge", "judge_captioned"):  # finished judges: their stages are reused
        (tmp_path / judge / "judge").mkdir(parents=True)
        (tmp_path / judge / "judge" / "model.safetensors").write_text("done")
        (tmp_path / judge / "summary.json").write_text(json.dumps({"val_top1": 0.9}))
    seen = []

    def run_row(row, out, budget, judge_dir, progress, t2i_judge=None, chains=True, seeds=None):
        seen.append((row, t2i_judge, chains))
        return {"times": {}}

    monkeypatch.setattr(semtok.pipelines.suite, "run_row", run_row)
    monkeypatch.setattr(semtok.pipelines.report, "write_report", lambda out, results: out / "report.md")
    semtok.pipelines.suite.run_suite("quick", tmp_path, rows=rows, t2i=t2i)
    results = json.loads((tmp_path / "results.json").read_text())
    # the chains first (main or ablation part), then the text-to-image part alone
    assert seen == [(rows[0], tmp_path / j if j else None, j is None) for j in expected]
    # a captioned judge kept from an earlier run counts as the branch's (its kept results are reported)
    assert results["t2i"]["enabled"] is (rows[0] == "fsq") and results["t2i"]["prompts"] == PROMPTS
    assert results["budget"]["t2i_steps"] == 40
