"""CLI errors: one line, exit code 2, no traceback."""

import subprocess
import sys

import pytest

from semtok.cli import main


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "semtok", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "vqkd", "--out", "x", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "vqkd", "--out", "{tmp}/r", "--set", "model.num_codez=5"], "'model.num_codez' is unknown"),
        (
            ["train", "vqkd", "--out", "{tmp}/r", "--set", "train.steps=many"],
            "'train.steps': expected an integer",
        ),
        (["train", "vqkd", "--out", "{tmp}/r", "--config", "{tmp}/none.yaml"], "does not exist"),
        (["train", "vqkd", "--out", "{tmp}/r", "--teacher", "no-such-teacher"], "no-such-teacher"),
        (["train", "vqkd", "--out", "{tmp}/r", "--data", "{tmp}/no-such-dir"], "no-such-dir"),
        (["evaluate", "{tmp}/missing"], "missing"),
        (["tokenize", "{tmp}", "--data", "mnist5k", "--out", "{tmp}/t"], "no tokenizer"),
    ],
)
def test_errors_are_one_line(tmp_path, args, message):
    result = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and "Traceback" not in result.stderr


def test_checkpoint_of_another_kind(tmp_path, tiny_vqkd_overrides):
    """A tokenizer folder whose config.json names another kind: one clear error."""
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "config.json").write_text('{"kind": "vqgan-xyz", "config": {}}')
    assert main(["evaluate", str(tmp_path / "tok"), "--no-progress"]) == 2


def test_help_lists_verbs():
    result = run_cli("--help")
    assert result.returncode == 0
    for verb in ("train", "evaluate", "tokenize", "demo"):
        assert verb in result.stdout


@pytest.mark.slow
def test_cli_stop_and_resume(tmp_path, tiny_vqkd_overrides):
    sets = [arg for item in tiny_vqkd_overrides for arg in ("--set", item)]
    out = str(tmp_path / "run")
    assert (
        main(
            [
                "train",
                "vqkd",
                *sets,
                "--set",
                "train.steps=4",
                "--out",
                out,
                "--stop-at",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert not (tmp_path / "run" / "tokenizer").exists()
    assert main(["train", "vqkd", "--out", out, "--resume", "--no-progress"]) == 0
    assert (tmp_path / "run" / "tokenizer" / "model.safetensors").exists()
    assert (
        main(["train", "vqgan", "--out", out, "--resume", "--no-progress"]) == 2
    )  # a vqkd run, not a vqgan one


def _tiny_vqkd_tokenizer(folder):
    from semtok.teachers import TeacherConfig
    from semtok.tokenizers import VQKDConfig, VQKDQuantizerConfig, VQKDTokenizer

    config = VQKDConfig(
        image_size=32, patch_size=8, encoder="tiny", encoder_depth=1, quantizer=VQKDQuantizerConfig(code_dim=8, num_codes=16),
        decoder_width=32, decoder_heads=2, teacher=TeacherConfig(name="effnet-lite0", dim=112),
    )  # fmt: skip
    VQKDTokenizer(config).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(
    "verb_args, message",
    [
        (["reconstruct", "{tok}", "--data", "{tmp}/empty", "--out", "{tmp}/g.png"], "no image files found"),
        (["reconstruct", "{tok}", "--data", "mnist5k", "--out", "{tmp}/g.png"], "no pixel decoder"),
        (["reconstruct", "{tok}", "--data", "mnist5k", "--n", "0", "--out", "{tmp}/g.png"], "--n"),
        (["evaluate", "{bad}", "--data", "mnist5k"], "not a readable safetensors"),
        (["tokenize", "{bad}", "--data", "mnist5k", "--out", "{tmp}/t"], "not a readable safetensors"),
    ],
)
def test_reconstruct_and_evaluate_bad_input(tmp_path, verb_args, message):
    tok = _tiny_vqkd_tokenizer(tmp_path / "tok")
    bad = _tiny_vqkd_tokenizer(tmp_path / "bad")
    (bad / "model.safetensors").write_bytes(b"\x00" * 100)
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path, tok=tok, bad=bad) for a in verb_args]
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
