"""The benchmark suite's bookkeeping: stage reuse, aggregation over seeds, report rendering, subsets."""

import json
import statistics

import pytest

from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.evaluation.common import evenly_spaced
from semtok.pipelines.report import render_html, render_markdown, results_table
from semtok.pipelines.suite import (
    GENERATORS,
    ROWS,
    SUITES,
    SWEEP_ROWS,
    Stages,
    collect_row,
    generator_stages,
    run_suite,
    scaled,
)


def test_stages_run_once_and_record_time(tmp_path):
    calls = []
    stages = Stages(tmp_path / "row")
    done = tmp_path / "row" / "done.txt"
    stages.run("work", done, lambda: (calls.append(1), done.write_text("x")))
    stages.run("work", done, lambda: calls.append(2))
    assert calls == [1]
    assert "work" in json.loads((tmp_path / "row" / "times.json").read_text())
    assert Stages(tmp_path / "row").times.keys() == {"work"}  # read back by a rerun


def fake_chain(chain, seed, gfid, nar_gfid=None, rfid=40.0):
    """The metric JSONs of one chain (training seed ``seed``), as a finished chain leaves them."""
    (chain / "ar_run").mkdir(parents=True)
    (chain / "eval_val.json").write_text(
        json.dumps({"usage": 0.9, "rfid": rfid, "fid_extractor": "x", "num_codes": 1024})
    )
    (chain / "probe_val.json").write_text(json.dumps({"val_top1": 0.8}))
    (chain / "ar_run" / "summary.json").write_text(json.dumps({"val_nll": 3.2}))
    (chain / f"generation_seed{seed}.json").write_text(
        json.dumps({"gfid": gfid, "precision": 0.5, "recall": 0.4, "class_accuracy_skipped": "no judge"})
    )
    if nar_gfid is not None:
        (chain / "nar_run").mkdir()
        (chain / "nar_run" / "summary.json").write_text(json.dumps({"val_masked_nll": 4.5}))
        (chain / f"nar_generation_seed{seed}.json").write_text(
            json.dumps({"gfid": nar_gfid, "precision": 0.6, "recall": 0.3, "class_accuracy": 0.7 + seed / 10})
        )
    (chain / "times.json").write_text(json.dumps({"tokenizer": 20.0, "ar": 10.0, "nar": 10.0}))


def fake_row(row_dir, gfids, nar_gfids=()):
    """One chain per value of ``gfids`` (training seeds 0, 1, ...) under ``row_dir/seed{S}``."""
    for seed, gfid in enumerate(gfids):
        nar = nar_gfids[seed] if seed < len(nar_gfids) else None
        fake_chain(row_dir / f"seed{seed}", seed, gfid, nar, rfid=40.0 + seed)


def test_collect_row_mean_and_spread_over_training_seeds(tmp_path):
    fake_row(tmp_path / "vqkd", [10.0, 12.0, 14.0], [20.0, 23.0, 26.0])
    row = collect_row("vqkd", tmp_path / "vqkd", (0, 1, 2))
    assert row["gfid"] == 12.0 and row["gfid_std"] == pytest.approx(statistics.stdev([10, 12, 14]))
    assert row["gfid_per_seed"] == [10.0, 12.0, 14.0] and row["probe_top1"] == pytest.approx(0.8)
    assert row["rfid"] == 41.0 and row["rfid_std"] == 1.0 and row["rfid_per_seed"] == [40.0, 41.0, 42.0]
    assert row["probe_top1_std"] == pytest.approx(0.0) and row["ar_val_nll_per_seed"] == [3.2] * 3
    assert (
        row["class_accuracy"] is None
        and row["ar_val_nll"] == pytest.approx(3.2)
        and row["codebook_size"] == 1024
    )
    assert row["nar_gfid"] == 23.0 and row["nar_gfid_per_seed"] == [20.0, 23.0, 26.0]
    assert row["nar_class_accuracy"] == pytest.approx(0.8) and row["nar_val_masked_nll"] == pytest.approx(4.5)
    assert row["seeds"] == [0, 1, 2] and row["chains"] == 3 and row["fid_extractor"] == "x"
    assert row["times"] == {"tokenizer": 60.0, "ar": 30.0, "nar": 30.0} and len(row["times_per_seed"]) == 3
    assert json.loads(json.dumps(row)) == row  # results.json holds it as it is
    header, rows = results_table({"rows": {"vqkd": row}})
    columns = ["tokenizer", "codebook", "rFID", "FID_AR", "class acc. (AR)", "FID_NAR", "class acc. (NAR)"]
    assert [header.index(c) for c in columns] == sorted(header.index(c) for c in columns)  # Table 1 order
    assert rows[0][header.index("FID_AR")] == "12.00 ± 2.00"
    assert rows[0][header.index("FID_NAR")] == "23.00 ± 3.00"
    assert rows[0][header.index("rFID")] == "41.00 ± 1.00" and rows[0][header.index("n")] == "3"
    assert rows[0][header.index("class acc. (AR)")] == "–"
    assert rows[0][header.index("class acc. (NAR)")] == "0.800 ± 0.100"
    assert (
        rows[0][header.index("NAR val NLL")] == "4.500 ± 0.000"
        and rows[0][header.index("codebook")] == "1024"
    )
    assert rows[0][header.index("minutes (all stages)")] == "2.0"
    blocks = [("h1", "t"), ("p", "a < b"), ("table", (header, rows)), ("img", (tmp_path / "f.png", "cap"))]
    markdown = render_markdown(blocks, tmp_path)
    assert "| VQ-KD (EfficientNet-Lite0) |" in markdown and "![cap](f.png)" in markdown
    assert "| FID_AR |" in markdown and "| FID_NAR |" in markdown
    page = render_html(blocks, tmp_path)
    assert "a &lt; b" in page and "<img src='f.png'" in page and page.count("<tr>") == 2


def test_collect_row_leaves_out_absent_chains(tmp_path):
    fake_row(tmp_path / "fsq", [10.0, 99.0, 14.0])
    for path in (tmp_path / "fsq" / "seed1").iterdir():  # seed 1's chain has no files
        if path.is_file():
            path.unlink()
    row = collect_row("fsq", tmp_path / "fsq", (0, 1, 2))
    assert (
        row["seeds"] == [0, 2]
        and row["chains"] == 2
        and row["gfid"] == 12.0
        and row["gfid_per_seed"] == [10, 14]
    )
    assert row["nar_gfid"] is None and row["nar_gfid_std"] is None and row["nar_val_masked_nll"] is None
    one = collect_row("fsq", tmp_path / "fsq", (0,))
    assert one["gfid"] == 10.0 and one["gfid_std"] is None and one["chains"] == 1
    header, rows = results_table({"rows": {"fsq": one}})
    assert rows[0][header.index("FID_NAR")] == "–" and rows[0][header.index("FID_AR")] == "10.00"
    none = collect_row("fsq", tmp_path / "nothing", (0, 1))
    assert none["chains"] == 0 and none["gfid"] is None and none["times"] == {}


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
    assert SUITES["mnist"].train_seeds == (0, 1, 2) and SUITES["quick"].train_seeds == (0,)
    mnist = SUITES["mnist"]
    assert [scaled(mnist.tokenizer_steps, m) for m in mnist.sweep] == [100, 300, 1000]
    assert SUITES["quick"].sweep == (0.5, 1.0) and set(SWEEP_ROWS) <= set(ROWS)
    with pytest.raises(SemtokError, match="parts: expected"):
        run_suite("quick", tmp_path, parts="main,nope")
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
