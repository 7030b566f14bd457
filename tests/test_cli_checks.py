"""Bad inputs are caught before any work: one line `semtok: error: ...`, exit code 2, nothing written, at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import semtok.evaluation.generation  # noqa: F401  (imported up front: the timings below measure the checks only)
import semtok.pipelines.suite  # noqa: F401
from semtok.cli import main
from semtok.data.token_file import TokenDataset, read_token_file, write_token_file
from semtok.errors import SemtokError


def fake_model(folder: Path, kind: str) -> Path:
    """A folder that passes the CLI's up-front checks (config.json of ``kind`` + a weights file), never loaded."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"kind": kind, "config": {}}))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """tmp_path with a fake tokenizer, AR model, masked model and judge, a plain file, and a judge folder with no weights."""
    fake_model(tmp_path / "tok", "vqkd")
    fake_model(tmp_path / "arrun" / "ar", "ar")
    fake_model(tmp_path / "narrun" / "nar", "nar")
    fake_model(tmp_path / "judge", "judge")
    (tmp_path / "nojudge").mkdir()
    (tmp_path / "nojudge" / "config.json").write_text('{"kind": "judge"}')
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "tdir.json").mkdir()
    return tmp_path


def listing(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def run_checked(args: list[str], root: Path, capsys) -> str:
    """Run the CLI in-process; assert exit 2, one line, quick, and no file created under ``root``."""
    before = listing(root)
    started = time.perf_counter()
    try:
        code = main([a.format(tmp=root) for a in args])
    except SystemExit as error:  # argparse's own errors (bad choice, bad type)
        code = error.code
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semtok: error: "), err
    assert seconds < 3.0, f"{args}: {seconds:.1f} s before the error (work was done)"
    assert listing(root) == before, f"{args} wrote {listing(root) - before}"
    return lines[0]


CASES = [
    # evaluate (tokenizer)
    (["evaluate", "{tmp}/missing"], "'{tmp}/missing' does not exist"),
    (["evaluate", "{tmp}/afile"], "is a file, expected a run folder or a tokenizer folder"),
    (["evaluate", "{tmp}/adir"], "holds no tokenizer"),
    (["evaluate", "{tmp}/nojudge"], "has no model.safetensors"),
    (["evaluate", "{tmp}/tok", "--batch-size", "0"], "--batch-size: expected an int >= 1, got 0"),
    (["evaluate", "{tmp}/tok", "--data", "{tmp}/nodata"], "--data '{tmp}/nodata'"),
    (["evaluate", "{tmp}/tok", "--data", "{tmp}/afile"], "--data '{tmp}/afile' is a file"),
    (["evaluate", "{tmp}/tok", "--out", "{tmp}/afile/e.json"], "'{tmp}/afile' is a file"),
    (["evaluate", "{tmp}/tok", "--out", "{tmp}/adir"], "--out '{tmp}/adir' is a folder"),
    (["evaluate", "{tmp}/tok", "--teacher-weights", "{tmp}/w.pt"], "--teacher-weights '{tmp}/w.pt'"),
    (["evaluate", "{tmp}/tok", "--inception-weights", "{tmp}/adir"], "--inception-weights '{tmp}/adir'"),
    (["evaluate", "{tmp}/tok", "--lpips-weights", "{tmp}/w.pt"], "--lpips-weights"),
    (["evaluate", "{tmp}/tok", "--judge", "{tmp}/judge"], "--judge applies to generation metrics"),
    (["evaluate", "{tmp}/arrun"], "'{tmp}/arrun' holds an AR model: add --generation"),
    (["evaluate", "{tmp}/narrun"], "'{tmp}/narrun' holds a masked model: add --generation"),
    (["evaluate", "{tmp}/tok", "--steps", "4"], "--steps is a sampling setting: it applies to generation"),
    (["evaluate", "{tmp}/tok", "--cfg", "3"], "--cfg is a sampling setting"),
    # evaluate --generation
    (
        ["evaluate", "{tmp}/tok", "--generation"],
        "describes a 'vqkd', expected an AR or masked model (kind 'ar' or 'nar')",
    ),
    (
        ["evaluate", "{tmp}/arrun", "--generation", "--judge", "{tmp}/MISSING"],
        "--judge '{tmp}/MISSING' does not",
    ),
    (["evaluate", "{tmp}/arrun", "--generation", "--judge", "{tmp}/nojudge"], "has no model.safetensors"),
    (["evaluate", "{tmp}/arrun", "--generation", "--judge", "{tmp}/tok"], "expected a judge (kind 'judge')"),
    (["evaluate", "{tmp}/arrun", "--generation", "--samples-out", "{tmp}/s.jpg"], "ending in .png"),
    (["evaluate", "{tmp}/arrun", "--generation", "--batch-size", "-1"], "--batch-size"),
    (["evaluate", "{tmp}/arrun", "--generation", "--teacher-weights", "{tmp}/afile"], "tokenizer evaluation"),
    (["evaluate", "{tmp}/arrun", "--generation", "--top-p", "0"], "top"),
    (["evaluate", "{tmp}/arrun", "--generation", "--split", "test"], "invalid choice: 'test'"),
    (["evaluate", "{tmp}/arrun", "--generation", "--cfg-ramp"], "--cfg-ramp applies to masked (nar) models"),
    (["evaluate", "{tmp}/narrun", "--generation", "--steps", "0"], "--steps 0: expected a number of masked"),
    (
        ["evaluate", "{tmp}/narrun", "--generation", "--choice-temperature", "-1"],
        "--choice-temperature -1.0: expected a float >= 0",
    ),
    (["evaluate", "{tmp}/narrun", "--generation", "--schedule", "nope"], "invalid choice: 'nope'"),
    # probe
    (["probe", "{tmp}/tok", "--max-iter", "0"], "--max-iter: expected an int >= 1"),
    (["probe", "{tmp}/tok", "--batch-size", "0"], "--batch-size"),
    (["probe", "{tmp}/tok", "--out", "{tmp}/afile/p.json"], "'{tmp}/afile' is a file"),
    (["probe", "{tmp}/missing"], "does not exist"),
    # tokenize
    (["tokenize", "{tmp}/tok", "--data", "{tmp}/nodata", "--out", "{tmp}/t"], "--data '{tmp}/nodata'"),
    (["tokenize", "{tmp}/tok", "--data", "mnist5k", "--out", "{tmp}/afile/t"], "'{tmp}/afile' is a file"),
    (["tokenize", "{tmp}/tok", "--data", "mnist5k", "--out", "{tmp}/tdir"], "'{tmp}/tdir.json' is a folder"),
    (["tokenize", "{tmp}/tok", "--data", "mnist5k", "--views", "0", "--out", "{tmp}/t"], "--views"),
    (["tokenize", "{tmp}/tok", "--data", "mnist5k", "--views", "2", "--out", "{tmp}/t"], "--augment"),
    (
        ["tokenize", "{tmp}/tok", "--data", "mnist5k", "--crop-scale", "0", "2", "--out", "{tmp}/t"],
        "--crop-scale",
    ),
    (["tokenize", "{tmp}/tok", "--data", "mnist5k", "--batch-size", "0", "--out", "{tmp}/t"], "--batch-size"),
    (["tokenize", "{tmp}/tok", "--data", "mnist5k", "--split", "test", "--out", "{tmp}/t"], "invalid choice"),
    # sample
    (
        ["sample", "{tmp}/missing", "--out", "{tmp}/s.png"],
        "does not exist: expected a run folder or an AR or masked model folder",
    ),
    (
        ["sample", "{tmp}/arrun", "--out", "{tmp}/s.jpg"],
        "--out '{tmp}/s.jpg': expected a file name ending in .png",
    ),
    (["sample", "{tmp}/arrun", "--out", "{tmp}/afile/s.png"], "'{tmp}/afile' is a file"),
    (
        ["sample", "{tmp}/arrun", "--n", "0", "--out", "{tmp}/s.png"],
        "--n: expected a positive number of samples",
    ),
    (["sample", "{tmp}/arrun", "--batch-size", "0", "--out", "{tmp}/s.png"], "--batch-size"),
    (["sample", "{tmp}/arrun", "--class", "-1", "--out", "{tmp}/s.png"], "--class: expected an int >= 0"),
    (
        ["sample", "{tmp}/arrun", "--images", "{tmp}/afile", "--out", "{tmp}/s.png"],
        "--images '{tmp}/afile' is a",
    ),
    (
        ["sample", "{tmp}/arrun", "--tokenizer", "{tmp}/missing", "--out", "{tmp}/s.png"],
        "--tokenizer '{tmp}/missing",
    ),
    (["sample", "{tmp}/arrun", "--tokenizer", "{tmp}/adir", "--out", "{tmp}/s.png"], "holds no tokenizer"),
    (["sample", "{tmp}/arrun", "--top-k", "-1", "--out", "{tmp}/s.png"], "--top-k -1: expected an int >= 0"),
    (["sample", "{tmp}/arrun", "--top-p", "1.5", "--out", "{tmp}/s.png"], "--top-p 1.5: expected a value"),
    (["sample", "{tmp}/arrun", "--temperature", "-1", "--out", "{tmp}/s.png"], "--temperature -1.0"),
    (["sample", "{tmp}/arrun", "--cfg", "-2", "--out", "{tmp}/s.png"], "--cfg -2.0: expected a guidance"),
    (
        ["sample", "{tmp}/arrun", "--steps", "8", "--out", "{tmp}/s.png"],
        "--steps applies to masked (nar) models, but '{tmp}/arrun' holds an AR model",
    ),
    (
        ["sample", "{tmp}/arrun", "--schedule", "linear", "--out", "{tmp}/s.png"],
        "--schedule applies to masked",
    ),
    (
        ["sample", "{tmp}/arrun", "--choice-temperature", "1", "--out", "{tmp}/s.png"],
        "--choice-temperature applies to masked",
    ),
    (["sample", "{tmp}/narrun", "--no-cache", "--out", "{tmp}/s.png"], "--no-cache applies to AR models"),
    (["sample", "{tmp}/narrun/nar", "--steps", "0", "--out", "{tmp}/s.png"], "--steps 0: expected"),
    (["sample", "{tmp}/tok", "--out", "{tmp}/s.png"], "expected an AR or masked model (kind 'ar' or 'nar')"),
    (
        ["sample", "{tmp}/adir", "--out", "{tmp}/s.png"],
        "no config.json, no ar/config.json or nar/config.json",
    ),
    # reconstruct
    (
        ["reconstruct", "{tmp}/tok", "--out", "{tmp}/g.txt"],
        "--out '{tmp}/g.txt': expected an image file name",
    ),
    (["reconstruct", "{tmp}/tok", "--n", "0", "--out", "{tmp}/g.png"], "--n"),
    (["reconstruct", "{tmp}/tok", "--data", "{tmp}/afile", "--out", "{tmp}/g.png"], "--data"),
    # demo, bench
    (["demo", "--out", "{tmp}/afile"], "--out '{tmp}/afile' is a file, expected a folder"),
    (["demo", "--out", "{tmp}/afile/run"], "'{tmp}/afile' is a file, so nothing can be written under it"),
    (["demo", "--steps", "0", "--out", "{tmp}/d"], "--steps: expected an int >= 1, got 0"),
    (["demo", "--tokenizer", "vqgan", "--out", "{tmp}/d"], "--tokenizer: invalid choice: 'vqgan'"),
    (["demo", "--seed", "-1", "--out", "{tmp}/d"], "--seed: expected an int >= 0, got -1"),
    (["bench", "--out", "{tmp}/afile"], "--out '{tmp}/afile' is a file"),
    (["bench", "--rows", "nope", "--out", "{tmp}/b"], "--rows: unknown ['nope']"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a[:1] + a[2:]) for a, _ in CASES])
def test_bad_inputs_fail_before_any_work(work, capsys, args, message):
    line = run_checked(args, work, capsys)
    assert message.format(tmp=work) in line


def test_demo_library_checks_its_folder(tmp_path):
    from semtok.pipelines.demo import run_demo

    (tmp_path / "afile").write_text("x")
    with pytest.raises(SemtokError, match="demo output folder .* is a file"):
        run_demo(tmp_path / "afile", progress=False)
    with pytest.raises(SemtokError, match="demo steps"):
        run_demo(tmp_path / "new", steps=0, progress=False)
    with pytest.raises(
        SemtokError, match=r"demo tokenizer: expected one of \['vqkd', 'cluster'\], got 'fsq'"
    ):
        run_demo(tmp_path / "new", tokenizer="fsq", progress=False)
    with pytest.raises(SemtokError, match="demo seed: expected an int >= 0, got -2"):
        run_demo(tmp_path / "new", seed=-2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# ------------------------------------------------------------------------------------------- token files
@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    ids = torch.randint(0, 16, (5, 2, 3))
    return write_token_file(
        tmp_path / "t", ids, torch.arange(5) % 2, 16, {"num_classes": 2, "class_names": []}
    )


def _truncate(path: Path, drop: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-drop])


TOKEN_DAMAGE = [
    (
        "ids missing",
        lambda d: (d / "t.npy").unlink(),
        "token ids file '{d}/t.npy' (named by '{d}/t.json') does not",
    ),
    (
        "ids garbage",
        lambda d: (d / "t.npy").write_bytes(b"hello"),
        "'{d}/t.npy' is not a NumPy .npy array file",
    ),
    (
        "ids float",
        lambda d: np.save(d / "t.npy", np.zeros((5, 2, 3), np.float32)),
        "float32 values, expected a plain",
    ),
    ("ids object", lambda d: np.save(d / "t.npy", np.array([None] * 5), allow_pickle=True), "object values"),
    (
        "ids dtype",
        lambda d: np.save(d / "t.npy", np.zeros((5, 2, 3), np.int32)),
        "int32 values, the manifest says",
    ),
    (
        "ids shape",
        lambda d: np.save(d / "t.npy", np.zeros((4, 2, 3), np.uint16)),
        "shape [4, 2, 3], the manifest",
    ),
    ("ids truncated", lambda d: _truncate(d / "t.npy", 5), "'{d}/t.npy' is truncated: "),
    ("labels missing", lambda d: (d / "t.labels.npy").unlink(), "token labels file '{d}/t.labels.npy'"),
    (
        "labels shape",
        lambda d: np.save(d / "t.labels.npy", np.zeros(3, np.int64)),
        "has shape [3], the manifest",
    ),
    ("labels float", lambda d: np.save(d / "t.labels.npy", np.zeros(5)), "float64 values, expected a plain"),
    ("labels truncated", lambda d: _truncate(d / "t.labels.npy", 8), "'{d}/t.labels.npy' is truncated"),
    ("manifest json", lambda d: (d / "t.json").write_text("{"), "'{d}/t.json' is not valid JSON"),
    ("manifest format", lambda d: (d / "t.json").write_text("{}"), "is not a semtok-tokens manifest"),
]


@pytest.mark.parametrize("damage, message", [c[1:] for c in TOKEN_DAMAGE], ids=[c[0] for c in TOKEN_DAMAGE])
def test_damaged_token_files_are_one_line_errors(tokens, damage, message):
    folder = tokens.parent
    ids, labels, _ = read_token_file(tokens)
    assert ids.shape == (5, 2, 3) and labels.shape == (5,)
    damage(folder)
    for reader in (read_token_file, TokenDataset):
        with pytest.raises(SemtokError) as error:
            reader(tokens)
        text = str(error.value)
        assert "\n" not in text and message.format(d=folder) in text, text


def test_manifest_keys_are_checked(tokens):
    manifest = json.loads(tokens.read_text())
    for key, value, message in [
        ("ids_file", None, "key 'ids_file' is None, expected a str"),
        ("grid", [2], "grid [2], expected [h, w]"),
        ("dtype", "float32", "expected an integer dtype"),
        ("num_images", "5", "key 'num_images'"),
        ("version", 2, "version 2, expected 1"),
    ]:
        tokens.write_text(json.dumps({**manifest, key: value}))
        with pytest.raises(SemtokError, match="token manifest") as error:
            read_token_file(tokens)
        assert message in str(error.value)


def test_train_ar_on_a_damaged_token_file_writes_nothing(tokens, tmp_path, capsys):
    _truncate(tokens.with_suffix(".npy"), 3)
    code = main(["train", "ar", "--tokens", str(tokens), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is truncated" in err[0]
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------- judge before sampling
def test_generation_checks_the_judge_before_sampling(tmp_path, monkeypatch):
    """A real (random) AR model: a wrong judge fails before a single token is sampled."""
    from semtok.evaluation.generation import evaluate_generation
    from semtok.evaluation.judge import Judge, JudgeConfig
    from semtok.generators import ARConfig, ARTransformer
    from semtok.generators.sampler import Sampler
    from semtok.tokenizers import ConvNetConfig, FSQConfig, FSQTokenizer

    torch.manual_seed(0)
    fsq = FSQConfig(image_size=32, levels=(4, 3), conv=ConvNetConfig(channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=16, attn_resolutions=()))  # fmt: skip
    tokenizer_dir = FSQTokenizer(fsq).eval().save_pretrained(tmp_path / "fsq")
    config = ARConfig(depth=1, width=32, heads=2, vocab_size=12, seq_len=64, grid=(8, 8), num_classes=3)
    extra = {"tokenizer": str(tokenizer_dir), "data": {"dataset": "mnist5k"}}
    ar = ARTransformer(config)
    ar.info = extra
    ar.save_pretrained(tmp_path / "ar")
    Judge(JudgeConfig(num_classes=2, width=8, stages=2)).save_pretrained(tmp_path / "judge")

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before the inputs were checked")

    monkeypatch.setattr(Sampler, "sample", no_sampling)
    with pytest.raises(SemtokError, match=r"judge '.*judge' knows 2 classes, the AR model 3"):
        evaluate_generation(tmp_path / "ar", judge=tmp_path / "judge", progress=False)
    with pytest.raises(SemtokError, match="judge .* does not exist"):
        evaluate_generation(tmp_path / "ar", judge=tmp_path / "MISSING", progress=False)
    with pytest.raises(SemtokError, match="samples_out"):
        evaluate_generation(tmp_path / "ar", samples_out=tmp_path / "s.jpg", progress=False)


def test_library_errors_do_not_name_cli_flags(tmp_path):
    from semtok.config import apply_overrides, read_config_source
    from semtok.generators.sampler import Sampler

    for call, message in [
        (lambda: read_config_source(str(tmp_path / "none.yaml")), "config file"),
        (lambda: read_config_source("no-such-config"), "config 'no-such-config'"),
        (lambda: apply_overrides({}, ["nokey"]), "config override 'nokey'"),
        (lambda: Sampler(tmp_path / "missing"), "does not exist"),
    ]:
        with pytest.raises(SemtokError, match=message) as error:
            call()
        assert "--" not in str(error.value)
