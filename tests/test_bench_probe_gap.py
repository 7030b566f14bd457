"""benchmarks/bench_probe_gap.py: its variant table, group selection, and a --quick --only H1 run that resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_probe_gap as bench  # noqa: E402


def test_variant_table_and_selection():
    assert set(bench.GROUPS) == {"H1", "H2", "H3", "H4", "H5"}
    assert all(set(v.groups) <= set(bench.GROUPS) for v in bench.VARIANTS.values())
    assert bench.VARIANTS["vqkd"].groups == tuple(bench.GROUPS)  # the base row is in every group
    assert bench.select(None) == list(bench.VARIANTS)
    assert bench.select("H1") == ["vqkd", "cluster", "teacher"]
    assert bench.select("h2, H3") == [
        "vqkd",
        "vqkd-steps100",
        "vqkd-steps1000",
        "vqkd-dim112",
        "vqkd-codes8192",
    ]
    assert bench.select("H5") == ["vqkd", "vqkd-stride8", "teacher-stride8"]
    with pytest.raises(SystemExit, match="H9"):
        bench.select("H9")
    steps = [bench.VARIANTS[n].steps for n in ("vqkd-steps100", "vqkd", "vqkd-steps1000")]
    assert steps == [100, 300, 1000]


def test_overrides_seed_and_quick():
    base = bench.vqkd_overrides(bench.VARIANTS["vqkd-codes8192"], 2, "mnist5k", quick=False)
    assert base == [
        "train.steps=300",
        "train.seed=2",
        "data.dataset=mnist5k",
        "model.quantizer.num_codes=8192",
    ]
    quick = bench.vqkd_overrides(bench.VARIANTS["vqkd-codes8192"], 0, "folder", quick=True)
    assert quick[-1] == "model.quantizer.num_codes=128" and "train.steps=3" in quick  # the variant's own wins


def test_a_folder_made_with_other_overrides_is_refused(tmp_path):
    spec = {"variant": "vqkd", "overrides": ["train.steps=300"], "quick": False}
    bench.check_spec(tmp_path / "row", spec)
    bench.check_spec(tmp_path / "row", spec)  # the same: reused
    with pytest.raises(SystemExit, match="another --out"):
        bench.check_spec(tmp_path / "row", {**spec, "quick": True})


@pytest.mark.slow
def test_quick_h1_runs_and_resumes(tmp_path):
    out, result = tmp_path / "out", tmp_path / "r.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_probe_gap.py"), "--quick", "--only", "H1"]
    command += ["--out", str(out), "--json", str(result), "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'benchmarks'}", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(result.read_text())
    assert [r["variant"] for r in results["rows"]] == ["vqkd", "cluster", "teacher"]
    vqkd, cluster, teacher = results["rows"]
    assert set(vqkd["probes"]) == set(cluster["probes"]) == {"pooled", "flat", "decoded", "histogram"}
    assert set(teacher["probes"]) == {"pooled", "flat"}
    assert vqkd["probes"]["pooled"]["feature_dim"] == 32 and vqkd["probes"]["flat"]["feature_dim"] == 64 * 32
    assert (
        vqkd["probes"]["decoded"]["feature_dim"] == 112 and vqkd["probes"]["histogram"]["feature_dim"] == 64
    )
    assert (
        cluster["probes"]["pooled"]["feature_dim"] == 112 and teacher["probes"]["flat"]["feature_dim"] == 7168
    )
    assert 0 < vqkd["teacher_cosine"] <= 1 and vqkd["wall_seconds"] > 0
    assert json.loads((out / "vqkd" / "seed0" / "probe_flat.json").read_text())["input"] == "flat"
    assert "| H1 | Cluster" in done.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "] tokenizer" not in again.stdout and "] probe_" not in again.stdout  # every stage reused
    assert json.loads(result.read_text())["rows"][0]["probes"] == vqkd["probes"]
