"""Model cards, `semtok push` (its hub calls recorded, not sent: no network here) and loading all four model kinds by
repo id from a real offline hub cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import HfApi, ModelCard

from semtok.cli import main
from semtok.errors import SemtokError
from semtok.evaluation.judge import Judge
from semtok.generators import ARTransformer
from semtok.generators.masked import MaskedConfig, MaskedTransformer
from semtok.hub.card import model_card
from semtok.tokenizers import Tokenizer
from test_hub import COMMIT, offline_hub_cache, outputs, tiny_ar, tiny_judge, tiny_tokenizer  # noqa: F401

EVAL = {"psnr": 21.5, "codebook_usage": 0.75, "rfid": 12.25, "data": "mnist5k", "split": "val", "fid": True}
PROBE = {"top1": 0.625, "data": "mnist5k", "protocol": "linear probe on frozen code vectors"}
SUMMARY = {
    "kind": "fsq",
    "steps": 40,
    "train_images": 4500,
    "processes": 1,
    "final_losses": {"loss/mse": 0.0123},
}


def tiny_masked() -> MaskedTransformer:
    torch.manual_seed(0)
    return MaskedTransformer(
        MaskedConfig(depth=1, width=16, heads=2, vocab_size=12, seq_len=8, grid=(2, 4), num_classes=2)
    )


def masked_outputs(model: MaskedTransformer) -> torch.Tensor:
    ids = torch.randint(0, 13, (2, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(ids, torch.tensor([0, 2]))


def tokenizer_run(root: Path) -> Path:
    """A run folder as `semtok train` + `semtok evaluate` + `semtok probe` leave it."""
    model = tiny_tokenizer().eval()
    model.info = {"data": {"dataset": "mnist5k", "split": "train"}, "license": "apache-2.0"}
    model.save_pretrained(root / "tokenizer")
    (root / "eval_val.json").write_text(json.dumps(EVAL))
    (root / "probe_val.json").write_text(json.dumps(PROBE))
    (root / "summary.json").write_text(json.dumps(SUMMARY))
    return root


def test_the_card_has_front_matter_metrics_provenance_and_loading(tmp_path: Path):
    run = tokenizer_run(tmp_path / "run")
    text = (run / "tokenizer" / "README.md").read_text()  # save_pretrained wrote one (before any evaluation)
    assert "No evaluation results were found" in text and "eval_val.json" not in text  # written before them
    loaded = Tokenizer.from_pretrained(run)  # the loaded model remembers its run: its card finds the JSONs
    loaded.save_pretrained(tmp_path / "copy", model_card_kwargs={"repo_id": "semtok-org/fsq-tiny"})
    card = ModelCard.load(tmp_path / "copy" / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "semtok" and data["license"] == "apache-2.0"
    assert {"semtok", "fsq", "image-tokenizer"} <= set(data["tags"])
    assert data["pipeline_tag"] == "image-feature-extraction"
    text = card.text
    assert "| psnr | 21.5 | `eval_val.json` |" in text and "| rfid | 12.25 | `eval_val.json` |" in text
    assert "| top1 | 0.625 | `probe_val.json` |" in text
    assert '`eval_val.json`: data: "mnist5k"; split: "val"; fid: true' in text
    assert 'protocol: "linear probe on frozen code vectors"' in text
    assert "steps 40, train_images 4500, processes 1" in text and "loss/mse 0.0123" in text
    h, w = loaded.grid_size
    assert (
        f"- codebook: {loaded.num_codes}\n- token grid: {h}x{w}\n- parameters: " in text
        and loaded.num_codes == 12
    )
    assert 'Tokenizer.from_pretrained("semtok-org/fsq-tiny")' in text
    assert "semtok tokenize semtok-org/fsq-tiny" in text
    assert json.dumps(json.loads((run / "tokenizer" / "config.json").read_text())["config"], indent=2) in text

    for build, kind, pipeline in (
        (tiny_ar, "ar", None),
        (tiny_masked, "nar", None),
        (tiny_judge, "judge", "image-classification"),
    ):
        build().save_pretrained(tmp_path / kind)
        front = ModelCard.load(tmp_path / kind / "README.md").data.to_dict()
        assert (
            front["library_name"] == "semtok"
            and kind in front["tags"]
            and front.get("pipeline_tag") == pipeline
        )
        assert "license" not in front  # not known: no guess
    assert "MaskedTransformer.from_pretrained" in model_card(tmp_path / "nar")


class Recorder:
    """Stands in for the two network calls of HfApi; records what our code asked for."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail = fail

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def create_repo(api, **kwargs):
            self.calls.append(("create_repo", kwargs))
            return huggingface_hub.RepoUrl(f"https://huggingface.co/{kwargs['repo_id']}")

        def upload_folder(api, **kwargs):
            if self.fail:
                raise ConnectionError("Failed to establish a new connection\nsecond line")
            folder = Path(kwargs["folder_path"])
            sent = sorted(
                p.name
                for p in folder.iterdir()
                if any(p.match(pattern) for pattern in kwargs["allow_patterns"])
            )
            self.calls.append(("upload_folder", {**kwargs, "files": sent}))
            return f"https://huggingface.co/{kwargs['repo_id']}/commit/{COMMIT}"

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "upload_folder", upload_folder)


def test_push_writes_the_card_and_uploads_the_folder(tmp_path: Path, monkeypatch, capsys):
    run = tokenizer_run(tmp_path / "run")
    (run / "tokenizer" / "README.md").unlink()
    (run / "tokenizer" / "notes.txt").write_text("not pushed")
    recorder = Recorder()
    recorder.install(monkeypatch)
    assert main(["push", str(run), "--repo", "semtok-org/fsq-tiny", "--private"]) == 0, (
        capsys.readouterr().err
    )
    (name, create), (name2, upload) = recorder.calls
    assert name == "create_repo" and create["repo_id"] == "semtok-org/fsq-tiny" and create["private"] is True
    assert name2 == "upload_folder" and Path(upload["folder_path"]) == run / "tokenizer"
    assert (
        upload["files"] == ["README.md", "config.json", "model.safetensors"]
        and upload["repo_type"] == "model"
    )
    card = (run / "tokenizer" / "README.md").read_text()
    assert "| psnr | 21.5 | `eval_val.json` |" in card and 'from_pretrained("semtok-org/fsq-tiny")' in card
    assert f"commit/{COMMIT}" in capsys.readouterr().out

    failing = Recorder(fail=True)
    failing.install(monkeypatch)
    assert main(["push", str(run / "tokenizer"), "--repo", "semtok-org/fsq-tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "push to 'semtok-org/fsq-tiny' failed (ConnectionError: Failed to establish" in err[0]
    )
    assert [name for name, _ in failing.calls] == ["create_repo"]  # the upload raised
    assert main(["push", str(run), "--repo", "no-slash"]) == 2
    assert "--repo 'no-slash': expected a hub repo id org/name" in capsys.readouterr().err
    (run / "tokenizer" / "model.safetensors").write_bytes(b"garbage")
    assert (
        main(["push", str(run), "--repo", "semtok-org/x"]) == 2
    )  # a folder that does not load is not pushed
    assert "not a readable safetensors" in capsys.readouterr().err and len(failing.calls) == 1


LOADERS = {
    "tokenizer": (tiny_tokenizer, Tokenizer, outputs),
    "ar": (tiny_ar, ARTransformer, outputs),
    "nar": (tiny_masked, MaskedTransformer, masked_outputs),
    "judge": (tiny_judge, Judge, outputs),
}


@pytest.mark.slow  # (about 2 s on 2 contended cores: the hub client's first cache lookups)
def test_every_kind_loads_by_repo_id_from_an_offline_hub_cache(
    tmp_path: Path,
    offline_hub_cache: Path,  # noqa: F811 - the fixture imported from test_hub
    monkeypatch,
):
    monkeypatch.chdir(tmp_path)  # no local folder named like the repo ids
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    for folder, (build, loader, run) in LOADERS.items():
        model = build().eval()
        model.info = {"from": "hub"}
        model.save_pretrained(
            tmp_path / "local" / folder, model_card_kwargs={"repo_id": f"semtok-org/{folder}"}
        )
        repo = offline_hub_cache / f"models--semtok-org--{folder}"  # huggingface_hub's cache layout
        snapshot = repo / "snapshots" / COMMIT
        snapshot.mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "README.md"):
            shutil.copy(tmp_path / "local" / folder / name, snapshot / name)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
        loaded = loader.from_pretrained(f"semtok-org/{folder}")
        assert type(loaded) is type(model) and loaded.info == {"from": "hub"} and not loaded.training
        assert torch.equal(run(loaded), run(model)), folder
    with pytest.raises(SemtokError) as error:
        MaskedTransformer.from_pretrained("semtok-org/absent")
    message = str(error.value)
    assert "\n" not in message and message.startswith(
        "masked model 'semtok-org/absent' does not exist locally"
    )
    assert "HF_HUB_OFFLINE" in message


def test_changed_weights_do_not_inherit_the_source_metrics(tmp_path: Path):
    run = tokenizer_run(tmp_path / "run")
    loaded = Tokenizer.from_pretrained(run)
    with torch.no_grad():
        next(loaded.parameters()).add_(1.0)  # trained further, say: the run's metrics no longer describe it
    loaded.save_pretrained(tmp_path / "changed")
    card = (tmp_path / "changed" / "README.md").read_text()
    assert "eval_val.json" not in card and "No evaluation results were found" in card
