"""The bench suite as an experiment: chains per training seed, the budget sweep, parts, resume from metric JSONs,
the sweep curves and the report (every training / evaluation stage replaced by a stand-in that writes its files)."""

import dataclasses
import json

import pytest
from PIL import Image

import semtok.evaluation.generation
import semtok.evaluation.probe
import semtok.evaluation.tokenizer
import semtok.generators.sampler
import semtok.pipelines.report
import semtok.pipelines.tokenize
import semtok.tokenizers.cluster_build
import semtok.training
import semtok.visual.provenance
from semtok.cli import main
from semtok.errors import SemtokError
from semtok.pipelines.report import sample_blocks, write_report
from semtok.pipelines.suite import SUITES, collect_row, collect_sweep, run_suite
from semtok.pipelines.suite_t2i import PROMPTS, t2i_results
from semtok.visual.sweep_curves import plot_sweep
from test_bench import fake_chain, fake_row
from test_bench_t2i import fake_t2i

MODEL_FOLDER = {"ar": "ar", "nar": "nar", "judge": "judge"}  # every other stage: a tokenizer


def png(path, colour="red", size=(40, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def fake_pipeline(monkeypatch):
    """Stand-ins for every stage of a chain; returns the calls: ("train", stage, config, run_dir),
    ("generation", run_dir, seed), ("samples", path)."""
    calls = []

    def train(stage, config, run_dir, resume, progress):
        calls.append(("train", stage, config, run_dir))
        folder = run_dir / MODEL_FOLDER.get(stage, "tokenizer")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_text("weights")
        summary = {"val_nll": 3.0} if stage == "ar" else {"val_masked_nll": 4.0} if stage == "nar" else {}
        (run_dir / "summary.json").write_text(json.dumps(summary | {"val_top1": 0.9}))

    def build(config, run_dir, progress):
        calls.append(("train", "cluster", config, run_dir))
        (run_dir / "tokenizer").mkdir(parents=True, exist_ok=True)
        (run_dir / "tokenizer" / "model.safetensors").write_text("weights")

    def tokenize(tokenizer_dir, data, split, manifest, progress=False):
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text("{}")

    def generation(run_dir, data, split, sampling, seed, judge=None, progress=True, limit=None):
        calls.append(("generation", run_dir, seed))
        return {"gfid": 10.0 + seed, "class_accuracy": 0.5 + seed / 10, "precision": 0.5, "recall": 0.5}

    def write_samples(sampler, labels, path, sampling, seed=0, per_row=8, prompts=None):
        calls.append(("samples", path))
        png(path)

    monkeypatch.setattr(semtok.training, "train", train)
    monkeypatch.setattr(semtok.tokenizers.cluster_build, "build_cluster_tokenizer", build)
    monkeypatch.setattr(semtok.pipelines.tokenize, "tokenize_dataset", tokenize)
    monkeypatch.setattr(
        semtok.evaluation.tokenizer, "evaluate_tokenizer", lambda *a, **k: {"rfid": 30.0, "usage": 0.9}
    )
    monkeypatch.setattr(semtok.evaluation.probe, "probe_token_files", lambda *a, **k: {"val_top1": 0.7})
    monkeypatch.setattr(semtok.evaluation.generation, "evaluate_generation", generation)
    monkeypatch.setattr(semtok.generators.sampler, "Sampler", lambda run_dir: object())
    monkeypatch.setattr(semtok.visual.provenance, "write_samples", write_samples)
    # the report's model-drawn figures (reconstructions, curves, codebook) need real models: only the grids
    monkeypatch.setattr(semtok.pipelines.report, "figures", sample_blocks)
    return calls


def budget(monkeypatch, **changes):
    changed = dataclasses.replace(SUITES["quick"], **changes)
    monkeypatch.setitem(SUITES, "quick", changed)
    return changed


def trained(calls, out):
    """(stage, run folder relative to ``out``) of every training call."""
    return [(c[1], str(c[3].relative_to(out))) for c in calls if c[0] == "train"]


def test_chains_per_training_seed_sweep_and_t2i(fake_pipeline, monkeypatch, tmp_path):
    budget(monkeypatch, train_seeds=(0, 1), sweep=(0.5, 1.0, 2.0))
    run_suite("quick", tmp_path, rows=["vqkd", "cluster", "vqkd-random"])
    runs = trained(fake_pipeline, tmp_path)
    order = [run.split("/")[0] for _, run in runs]
    first = {name: order.index(name) for name in ("judge", "vqkd", "sweep", "vqkd-random", "judge_captioned")}
    assert sorted(first, key=first.get) == ["judge", "vqkd", "sweep", "vqkd-random", "judge_captioned"]
    for row in ("vqkd", "cluster", "vqkd-random"):
        for seed in (0, 1):
            chain = tmp_path / row / f"seed{seed}"
            for name in ("eval_val.json", "probe_val.json", f"generation_seed{seed}.json"):
                assert (chain / name).is_file(), (row, seed, name)
            assert (chain / f"nar_generation_seed{seed}.json").is_file()
            assert not (chain / f"generation_seed{1 - seed}.json").exists()  # one sampling seed per chain
            assert (chain / "samples" / "class_9.png").exists() == (seed == 0)  # grids: seed 0 only
            assert (chain / "nar_samples" / "class_0.png").exists() == (seed == 0)
            assert (chain / "t2i" / f"generation_seed{seed}.json").exists() == (row != "vqkd-random")
            assert (chain / "t2i" / "samples.png").exists() == (row != "vqkd-random" and seed == 0)
    for call in fake_pipeline:  # every training stage of a chain under its seed, its metrics under it too
        parts = (*call[3 if call[0] == "train" else 1].relative_to(tmp_path).parts, "")
        if call[0] == "train" and parts[1].startswith("seed"):
            config = call[2]
            assert (config.build.seed if call[1] == "cluster" else config.train.seed) == int(parts[1][4:]), (
                parts
            )
        if call[0] == "generation" and parts[1].startswith("seed"):
            assert parts[1] == f"seed{call[2]}"
        if call[0] == "generation" and parts[0] == "sweep":
            assert call[2] == 0
    # the sweep: x15 and x60 trained, the multiplier-1 point is seed 0's chain (trained once)
    vqkd_tokenizers = [
        run
        for stage, run in runs
        if stage == "vqkd" and run.startswith(("vqkd/", "sweep/vqkd/")) and "/t2i/" not in run
    ]
    assert vqkd_tokenizers == [
        "vqkd/seed0/tokenizer_run",
        "vqkd/seed1/tokenizer_run",
        "sweep/vqkd/x15/tokenizer_run",
        "sweep/vqkd/x60/tokenizer_run",
    ]
    assert not (tmp_path / "sweep" / "vqkd" / "x30").exists()
    steps = {str(c[3].relative_to(tmp_path)): c[2] for c in fake_pipeline if c[0] == "train"}
    assert steps["sweep/vqkd/x15/tokenizer_run"].train.steps == 15
    assert steps["sweep/vqkd/x60/decoder_run"].train.steps == 60
    assert steps["sweep/cluster/x15/tokenizer_run"].model.kmeans_iters == 10  # 20 k-means iterations x 0.5
    assert steps["sweep/cluster/x15/decoder_run"].train.steps == 15
    assert steps["sweep/vqkd/x15/ar_run"].train.steps == SUITES["quick"].ar_steps  # the AR at its budget
    x15 = tmp_path / "sweep" / "vqkd" / "x15"
    assert (x15 / "generation_seed0.json").is_file() and not (x15 / "nar_run").exists()
    assert not (x15 / "samples").exists() and not (x15 / "t2i").exists()
    results = json.loads((tmp_path / "results.json").read_text())
    assert (
        list(results["rows"]) == ["vqkd", "cluster", "vqkd-random"] and results["rows"]["vqkd"]["chains"] == 2
    )
    assert (
        results["rows"]["vqkd"]["gfid_per_seed"] == [10.0, 11.0] and results["rows"]["vqkd"]["gfid"] == 10.5
    )
    assert results["rows"]["vqkd"]["t2i_gfid_per_seed"] == [10.0, 11.0]
    assert set(results["sweep"]) == {"vqkd", "cluster"}  # vqgan: not among the rows
    points = results["sweep"]["vqkd"]
    assert [p["tokenizer_side_steps"] for p in points] == [30, 60, 120] and [
        p["multiplier"] for p in points
    ] == [
        0.5,
        1.0,
        2.0,
    ]
    assert [p["dir"] for p in points] == ["sweep/vqkd/x15", "vqkd/seed0", "sweep/vqkd/x60"]
    assert [p["tokenizer_side_steps"] for p in results["sweep"]["cluster"]] == [15, 30, 60]
    assert [p["kmeans_iters"] for p in results["sweep"]["cluster"]] == [10, 20, 40]
    assert all(p["tokenizer_side_seconds"] is not None and p["gfid"] == 10.0 for p in points)
    with Image.open(tmp_path / "sweep_curves.png") as curves:
        assert curves.format == "PNG" and curves.width > 500
    report = (tmp_path / "report.md").read_text()
    assert "(sweep_curves.png)" in report and "(figures/samples_ar_nar_vqkd.png)" in report
    calls = len(fake_pipeline)
    run_suite("quick", tmp_path, rows=["vqkd", "cluster", "vqkd-random"])  # a rerun: nothing left to do
    assert len(fake_pipeline) == calls


def test_parts_run_in_order_and_resume(fake_pipeline, monkeypatch, tmp_path):
    budget(monkeypatch, train_seeds=(0, 1), sweep=(0.5, 1.0))
    run_suite("quick", tmp_path, rows=["vqgan"], parts="sweep")  # the sweep first: it needs seed 0's AR chain
    assert trained(fake_pipeline, tmp_path) == [
        ("judge", "judge"),
        ("vqgan", "sweep/vqgan/x15/tokenizer_run"),
        ("ar", "sweep/vqgan/x15/ar_run"),
        ("vqgan", "vqgan/seed0/tokenizer_run"),
        ("ar", "vqgan/seed0/ar_run"),
    ]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["parts"] == ["sweep"] and results["rows"]["vqgan"]["chains"] == 1
    assert results["rows"]["vqgan"]["nar_gfid"] is None and len(results["sweep"]["vqgan"]) == 2
    assert "Not run yet" in (tmp_path / "report.md").read_text()  # the text-to-image section
    fake_pipeline.clear()
    run_suite("quick", tmp_path, rows=["vqgan"], parts=("main",))  # seed 0 gains its masked model and grids
    assert trained(fake_pipeline, tmp_path) == [
        ("nar", "vqgan/seed0/nar_run"),
        ("vqgan", "vqgan/seed1/tokenizer_run"),
        ("ar", "vqgan/seed1/ar_run"),
        ("nar", "vqgan/seed1/nar_run"),
    ]
    assert (
        tmp_path / "vqgan" / "seed0" / "samples" / "class_0.png"
    ).exists()  # AR grids: its model was there
    assert not (tmp_path / "vqgan" / "seed1" / "samples").exists()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["rows"]["vqgan"]["chains"] == 2 and results["rows"]["vqgan"]["nar_gfid"] == 10.5


def test_chains_kept_as_json_files_are_collected_not_trained(monkeypatch, tmp_path):
    budget(monkeypatch, train_seeds=(0, 1, 2), sweep=(0.5, 1.0))

    def refuse(*args, **kwargs):
        raise AssertionError("nothing may be trained or evaluated")

    for module, name in [
        (semtok.training, "train"),
        (semtok.tokenizers.cluster_build, "build_cluster_tokenizer"),
        (semtok.evaluation.tokenizer, "evaluate_tokenizer"),
        (semtok.evaluation.generation, "evaluate_generation"),
        (semtok.visual.provenance, "write_samples"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    fake_row(tmp_path / "vqgan", [10.0, 12.0, 14.0], [20.0, 22.0, 24.0])  # metric JSONs only, no model file
    fake_chain(tmp_path / "sweep" / "vqgan" / "x15", 0, 30.0)
    (tmp_path / "judge").mkdir()
    (tmp_path / "judge" / "summary.json").write_text(json.dumps({"val_top1": 0.95}))
    run_suite("quick", tmp_path, rows=["vqgan"], parts="main,sweep")
    results = json.loads((tmp_path / "results.json").read_text())
    row = results["rows"]["vqgan"]
    assert row["gfid"] == 12.0 and row["gfid_std"] == 2.0 and row["nar_gfid"] == 22.0 and row["chains"] == 3
    assert [p["gfid"] for p in results["sweep"]["vqgan"]] == [30.0, 10.0]
    assert [p["tokenizer_side_steps"] for p in results["sweep"]["vqgan"]] == [15, 30]
    assert [p["tokenizer_side_seconds"] for p in results["sweep"]["vqgan"]] == [20.0, 20.0]
    report = (tmp_path / "report.md").read_text()  # the real figures(): no model, so no model-drawn picture
    assert "12.00 ± 2.00" in report and "Sample grids not run yet: VQGAN" in report
    assert "(sweep_curves.png)" in report and "recon_vqgan" not in report


def test_report_shows_curves_both_grids_and_the_prompts(tmp_path):
    fake_row(tmp_path / "vqkd", [10.0, 12.0, 14.0], [20.0, 22.0, 24.0])
    fake_row(tmp_path / "fsq", [15.0], [25.0])
    for seed in (0, 1, 2):
        fake_t2i(tmp_path / "vqkd" / f"seed{seed}", [30.0 + seed] * (seed + 1))
    png(tmp_path / "vqkd" / "seed0" / "t2i" / "samples.png")
    for k in range(10):
        png(tmp_path / "vqkd" / "seed0" / "samples" / f"class_{k}.png", "red")
        png(tmp_path / "vqkd" / "seed0" / "nar_samples" / f"class_{k}.png", "blue")
        png(tmp_path / "fsq" / "seed0" / "samples" / f"class_{k}.png", "green")
    fake_chain(tmp_path / "sweep" / "vqkd" / "x15", 0, 30.0)
    quick = dataclasses.replace(SUITES["quick"], train_seeds=(0, 1, 2))
    vqkd = collect_row("vqkd", tmp_path / "vqkd", quick.train_seeds)
    assert vqkd["t2i_gfid_per_seed"] == [30.0, 31.0, 32.0] and vqkd["t2i_gfid"] == 31.0
    sweep = {"vqkd": collect_sweep("vqkd", tmp_path, quick)}
    assert [p["gfid"] for p in sweep["vqkd"]] == [30.0, 10.0]
    plot_sweep(sweep, {"vqkd": "VQ-KD"}, tmp_path / "sweep_curves.png")
    with Image.open(tmp_path / "sweep_curves.png") as curves:
        assert curves.format == "PNG"
    machine = dict.fromkeys(
        ("cpu", "cpu_count", "torch_threads", "device", "python", "torch", "numpy", "semtok"), "x"
    )
    results = {
        "suite": "quick",
        "budget": dataclasses.asdict(quick),
        "machine": machine,
        "judge": {"val_top1": 0.9},
        "t2i": t2i_results(None) | {"enabled": True},
        "rows": {"vqkd": vqkd, "fsq": collect_row("fsq", tmp_path / "fsq", quick.train_seeds)},
        "sweep": sweep,
    }
    markdown = write_report(tmp_path, results).read_text()
    page = (tmp_path / "report.html").read_text()
    for text in (markdown, page):
        assert "sweep_curves.png" in text and "samples_ar_nar_vqkd.png" in text
        assert "3 training seeds" in text and "Budget sweep" in text
        assert text.count("a small magenta 7") >= 2  # the prompt table and the grid's caption
        assert "vqkd/seed0/t2i/samples.png" in text
    assert "| VQ-KD (EfficientNet-Lite0) | 0.50 |" in markdown
    assert "FSQ: AR (the other: not run yet)" in markdown
    assert all(prompt in markdown for prompt in PROMPTS)
    with Image.open(tmp_path / "figures" / "samples_ar_nar_vqkd.png") as both:
        assert both.size == (40 + 12 + 40, 200) and both.getpixel((0, 0)) == (255, 0, 0)
        assert both.getpixel((91, 199)) == (0, 0, 255)
    (tmp_path / "empty").mkdir()
    empty = write_report(tmp_path / "empty", {**results, "rows": {}, "sweep": {}, "t2i": t2i_results(None)})
    text = empty.read_text()
    assert "not run yet" in text and "Not run yet (semtok bench --parts sweep)" in text


def test_bench_parts_flag(monkeypatch, tmp_path):
    import semtok.pipelines.suite

    seen = {}
    monkeypatch.setattr(semtok.pipelines.suite, "run_suite", lambda *a, **k: seen.update(k))
    assert main(["bench", "--quick", "--out", str(tmp_path / "b"), "--parts", "sweep,main"]) == 0
    assert seen["parts"] == ("sweep", "main")
    assert main(["bench", "--quick", "--out", str(tmp_path / "b")]) == 0
    assert set(seen["parts"]) == {"main", "ablation", "sweep", "t2i"}
    assert main(["bench", "--quick", "--out", str(tmp_path / "b"), "--parts", "main,nope"]) == 2
    assert seen["kept"] is None and seen["collect_only"] is False
    kept = ["--kept", str(tmp_path / "k"), "--collect-only"]
    assert main(["bench", "--quick", "--out", str(tmp_path / "b"), *kept]) == 0
    assert seen["kept"] == str(tmp_path / "k") and seen["collect_only"] is True
    (tmp_path / "file").write_text("")
    assert main(["bench", "--quick", "--out", str(tmp_path / "b"), "--kept", str(tmp_path / "file")]) == 2


def test_finished_chains_are_kept_and_a_new_folder_resumes_from_them(fake_pipeline, monkeypatch, tmp_path):
    budget(monkeypatch, train_seeds=(0, 1))
    kept, out = tmp_path / "kept", tmp_path / "out"
    (out / "vqgan" / "seed1").mkdir(parents=True)
    (out / "fsq" / "seed0").mkdir(parents=True)  # an unfinished chain of a row not asked for: not kept
    (out / "fsq" / "seed0" / "eval_val.json").write_text(json.dumps({"rfid": 1.0}))
    run_suite("quick", out, rows=["vqgan"], parts="main", kept=kept)
    files = {str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()}
    for name in ("eval_val.json", "probe_val.json", "ar_run/summary.json", "nar_generation_seed1.json"):
        assert f"vqgan/seed1/{name}" in files, name
    assert "vqgan/seed0/samples/class_9.png" in files and "judge/summary.json" in files
    assert (
        "results.json" in files and "report.md" not in files
    )  # what is drawn from the kept files is redrawn
    assert not any(
        name.endswith(".safetensors") or "/tokens/" in name or name.startswith("fsq")
        for name in files - {"judge/judge/model.safetensors"}
    )
    assert (
        "judge/judge/model.safetensors" in files
    )  # the judge's classifier is kept: the same one every session
    fake_pipeline.clear()
    again = tmp_path / "again"
    run_suite("quick", again, rows=["vqgan"], parts="main", kept=kept)  # a fresh folder: nothing trained
    assert fake_pipeline == []
    first, second = (json.loads((f / "results.json").read_text())["rows"]["vqgan"] for f in (out, again))
    assert second["gfid_per_seed"] == first["gfid_per_seed"] and second["chains"] == 2
    third = tmp_path / "third"  # --collect-only: a row with no chain kept is not trained either
    run_suite("quick", third, rows=["vqgan", "fsq"], kept=kept, collect_only=True)
    assert fake_pipeline == [] and list(json.loads((third / "results.json").read_text())["rows"]) == ["vqgan"]
    run_suite(
        "quick", tmp_path / "empty", collect_only=True
    )  # nothing at all: no judge trained, an empty report
    assert fake_pipeline == [] and (tmp_path / "empty" / "report.md").exists()
    fake_pipeline.clear()  # a chain with work left in a fresh folder is scored by the kept judge, not a new one
    run_suite("quick", tmp_path / "fourth", rows=["fsq"], parts="main", kept=kept)
    assert fake_pipeline and not any(call[:2] == ("train", "judge") for call in fake_pipeline)
    # results.json holds every row of the folder, not only those of --rows
    for results in (tmp_path / "fourth" / "results.json", kept / "results.json"):
        rows = json.loads(results.read_text())["rows"]
        assert set(rows) == {"vqgan", "fsq"} and rows["vqgan"]["chains"] == 2, results


def test_seeds_limit_what_runs_not_what_is_collected(fake_pipeline, monkeypatch, tmp_path):
    budget(monkeypatch, train_seeds=(0, 1), sweep=(0.5, 1.0))
    run_suite("quick", tmp_path, rows=["vqgan"], parts="main", seeds=[1])
    assert trained(fake_pipeline, tmp_path) == [
        ("judge", "judge"),
        ("vqgan", "vqgan/seed1/tokenizer_run"),
        ("ar", "vqgan/seed1/ar_run"),
        ("nar", "vqgan/seed1/nar_run"),
    ]
    fake_pipeline.clear()
    run_suite("quick", tmp_path, rows=["vqgan"], parts="main")  # the seed left: 0
    assert [r for _, r in trained(fake_pipeline, tmp_path)] == [
        "vqgan/seed0/tokenizer_run",
        "vqgan/seed0/ar_run",
        "vqgan/seed0/nar_run",
    ]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["rows"]["vqgan"]["seeds"] == [0, 1]
    with pytest.raises(SemtokError, match="seeds: expected training seeds of suite quick"):
        run_suite("quick", tmp_path, rows=["vqgan"], parts="main", seeds=[5])


def test_bench_seeds_flag(monkeypatch, tmp_path):
    import semtok.pipelines.suite

    seen = {}
    monkeypatch.setattr(semtok.pipelines.suite, "run_suite", lambda *a, **k: seen.update(k))
    assert main(["bench", "--quick", "--out", str(tmp_path / "b"), "--seeds", "0", "2"]) == 0
    assert seen["seeds"] == [0, 2]
    assert main(["bench", "--quick", "--out", str(tmp_path / "b")]) == 0
    assert seen["seeds"] is None
