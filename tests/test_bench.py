"""The benchmark suite's bookkeeping: stage reuse, aggregation over seeds, report rendering, subsets."""

import json
import statistics

import pytest

from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.evaluation.common import evenly_spaced
from semtok.pipelines.report import render_html, render_markdown, results_table
from semtok.pipelines.suite import GENERATORS, ROWS, SUITES, Stages, collect_row, generator_stages, run_suite


def test_stages_run_once_and_record_time(tmp_path):
    calls = []
    stages = Stages(tmp_path / "row")
    done = tmp_path / "row" / "done.txt"
    stages.run("work", done, lambda: (calls.append(1), done.write_text("x")))
    stages.run("work", done, lambda: calls.append(2))
    assert calls == [1]
    assert "work" in json.loads((tmp_path / "row" / "times.json").read_text())
    assert Stages(tmp_path / "row").times.keys() == {"work"}  # read back by a rerun


def fake_row(row_dir, gfids, nar_gfids=()):
    (row_dir / "ar_run").mkdir(parents=True)
    (row_dir / "eval_val.json").write_text(
        json.dumps({"usage": 0.9, "rfid": 40.0, "fid_extractor": "x", "num_codes": 1024})
    )
    (row_dir / "probe_val.json").write_text(json.dumps({"val_top1": 0.8}))
    (row_dir / "ar_run" / "summary.json").write_text(json.dumps({"val_nll": 3.2}))
    for seed, gfid in enumerate(gfids):
        (row_dir / f"generation_seed{seed}.json").write_text(
            json.dumps({"gfid": gfid, "precision": 0.5, "recall": 0.4, "class_accuracy_skipped": "no judge"})
        )
    if nar_gfids:
        (row_dir / "nar_run").mkdir()
        (row_dir / "nar_run" / "summary.json").write_text(json.dumps({"val_masked_nll": 4.5}))
    for seed, gfid in enumerate(nar_gfids):
        (row_dir / f"nar_generation_seed{seed}.json").write_text(
            json.dumps({"gfid": gfid, "precision": 0.6, "recall": 0.3, "class_accuracy": 0.7 + seed / 10})
        )
    (row_dir / "times.json").write_text(json.dumps({"tokenizer": 60.0, "ar": 30.0, "nar": 30.0}))


def test_collect_row_mean_and_spread_over_seeds(tmp_path):
    fake_row(tmp_path / "vqkd", [10.0, 12.0, 14.0], [20.0, 23.0, 26.0])
    row = collect_row("vqkd", tmp_path / "vqkd", (0, 1, 2))
    assert row["gfid"] == 12.0 and row["gfid_std"] == pytest.approx(statistics.stdev([10, 12, 14]))
    assert row["gfid_per_seed"] == [10.0, 12.0, 14.0] and row["probe_top1"] == 0.8
    assert row["class_accuracy"] is None and row["ar_val_nll"] == 3.2 and row["codebook_size"] == 1024
    assert row["nar_gfid"] == 23.0 and row["nar_gfid_per_seed"] == [20.0, 23.0, 26.0]
    assert row["nar_class_accuracy"] == pytest.approx(0.8) and row["nar_val_masked_nll"] == 4.5
    assert json.loads(json.dumps(row)) == row  # results.json holds it as it is
    header, rows = results_table({"rows": {"vqkd": row}})
    columns = ["tokenizer", "codebook", "rFID", "FID_AR", "class acc. (AR)", "FID_NAR", "class acc. (NAR)"]
    assert [header.index(c) for c in columns] == sorted(header.index(c) for c in columns)  # Table 1 order
    assert rows[0][header.index("FID_AR")] == "12.00 ± 2.00"
    assert rows[0][header.index("FID_NAR")] == "23.00 ± 3.00"
    assert rows[0][header.index("class acc. (AR)")] == "–"
    assert rows[0][header.index("class acc. (NAR)")] == "0.800 ± 0.100"
    assert rows[0][header.index("NAR val NLL")] == "4.500" and rows[0][header.index("codebook")] == "1024"
    assert rows[0][header.index("minutes (all stages)")] == "2.0"
    blocks = [("h1", "t"), ("p", "a < b"), ("table", (header, rows)), ("img", (tmp_path / "f.png", "cap"))]
    markdown = render_markdown(blocks, tmp_path)
    assert "| VQ-KD (EfficientNet-Lite0) |" in markdown and "![cap](f.png)" in markdown
    assert "| FID_AR |" in markdown and "| FID_NAR |" in markdown
    page = render_html(blocks, tmp_path)
    assert "a &lt; b" in page and "<img src='f.png'" in page and page.count("<tr>") == 2


def test_collect_row_of_a_row_without_the_masked_model(tmp_path):
    fake_row(tmp_path / "fsq", [10.0])
    row = collect_row("fsq", tmp_path / "fsq", (0,))
    assert row["gfid"] == 10.0 and row["nar_gfid"] is None and row["nar_val_masked_nll"] is None
    header, rows = results_table({"rows": {"fsq": row}})
    assert rows[0][header.index("FID_NAR")] == "–" and rows[0][header.index("FID_AR")] == "10.00"


def test_generator_stages_reuse_a_finished_masked_model(tmp_path):
    row_dir = tmp_path / "vqkd"
    for path in [
        row_dir / "nar_run" / "nar" / "model.safetensors",
        row_dir / "nar_generation_seed0.json",
        *(row_dir / "nar_samples" / f"class_{k}.png" for k in range(10)),
    ]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("done")
    stages = Stages(row_dir)
    generator_stages("nar", row_dir, stages, SUITES["quick"], (0,), tmp_path / "judge", progress=False)
    assert stages.times == {} and not (row_dir / "times.json").exists()  # no token files: any work would fail
    assert SUITES["quick"].nar_steps == SUITES["quick"].ar_steps and set(GENERATORS) == {"ar", "nar"}


def test_suites_and_rows_are_consistent(tmp_path):
    assert {"vqgan", "fsq", "cvq", "vqkd", "cluster", "vqkd-lite2", "vqkd-random"} == set(ROWS)
    assert len(SUITES["mnist"].seeds) == 3
    with pytest.raises(SemtokError, match="suite: expected"):
        run_suite("imagenet", tmp_path)
    with pytest.raises(SemtokError, match="rows: unknown"):
        run_suite("quick", tmp_path, rows=["vqgan", "nope"])


def test_evenly_spaced_keeps_every_class():
    val = build_dataset("mnist5k", "val", 32)
    subset = evenly_spaced(val, 100)
    assert len(subset) == 100 and subset.labels.tolist() == [subset[i][1] for i in range(100)]
    assert sorted(set(subset.labels.tolist())) == list(range(10))
    assert evenly_spaced(val, None) is val and evenly_spaced(val, 10_000) is val
