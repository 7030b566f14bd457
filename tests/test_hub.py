"""One save/load mechanism for every model folder (semtok.hub.pretrained): round trips, run folders, the hub cache."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelHubMixin

from semtok.errors import SemtokError
from semtok.evaluation.judge import Judge, JudgeConfig
from semtok.generators import ARConfig, ARTransformer
from semtok.hub.pretrained import PretrainedModel, resolve_model_dir
from semtok.tokenizers import ConvNetConfig, FSQConfig, FSQTokenizer, Tokenizer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny_tokenizer() -> FSQTokenizer:
    torch.manual_seed(0)
    config = FSQConfig(
        image_size=16,
        levels=(4, 3),
        conv=ConvNetConfig(
            channels=8, channel_mult=(1, 2), num_res_blocks=1, z_channels=8, attn_resolutions=()
        ),
    )
    return FSQTokenizer(config)


def tiny_ar() -> ARTransformer:
    torch.manual_seed(0)
    model = ARTransformer(
        ARConfig(depth=1, width=16, heads=2, vocab_size=12, seq_len=8, grid=(2, 4), num_classes=2)
    )
    torch.nn.init.normal_(model.head.weight, std=0.5)  # the zero-initialised head gives equal logits
    return model


def tiny_judge() -> Judge:
    torch.manual_seed(0)
    return Judge(JudgeConfig(image_size=16, num_classes=3, width=8, stages=2, class_names=["a", "b", "c"]))


def outputs(model: torch.nn.Module) -> torch.Tensor:
    """A deterministic output of each model kind (float32)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        if isinstance(model, Tokenizer):
            return model.encode(torch.rand(2, 3, 16, 16, generator=generator) * 2 - 1).float()
        if isinstance(model, ARTransformer):
            ids = torch.randint(0, 12, (2, 8), generator=generator)
            return model(ids, torch.tensor([0, 1]))
        return model.classify(torch.rand(2, 3, 16, 16, generator=generator) * 2 - 1)


MODELS = {
    "tokenizer": (tiny_tokenizer, Tokenizer),
    "ar": (tiny_ar, ARTransformer),
    "judge": (tiny_judge, Judge),
}


@pytest.mark.parametrize("folder", list(MODELS))
def test_round_trip(tmp_path: Path, folder: str):
    build, loader = MODELS[folder]
    model = build().eval()
    assert isinstance(model, PretrainedModel) and isinstance(model, ModelHubMixin)
    assert model.info == {}
    model.info = {"source": "test", "val_top1": 0.5, "class_names": ["a", "b"]}
    saved = model.save_pretrained(tmp_path / "m")
    assert saved == tmp_path / "m"
    assert {p.name for p in saved.iterdir()} == {"config.json", "model.safetensors", "README.md"}  # no pickle
    meta = json.loads((saved / "config.json").read_text())
    assert set(meta) == {"kind", "semtok_version", "config", "info"} and meta["kind"] == model.kind
    assert meta["info"] == model.info

    loaded = loader.from_pretrained(saved)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config and loaded.info == model.info
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(outputs(loaded), outputs(model))
    twin = copy.deepcopy(model)  # (ModelHubMixin.__new__ must not get in the way of copies)
    assert (
        twin.info == model.info and twin.info is not model.info and torch.equal(outputs(twin), outputs(model))
    )
    saved.joinpath("model.safetensors").unlink()
    model.save_pretrained(saved)  # saving again fills the folder in again
    assert type(model).from_pretrained(saved).info == model.info


@pytest.mark.parametrize("folder", list(MODELS))
def test_run_folder_or_model_folder(tmp_path: Path, folder: str):
    build, loader = MODELS[folder]
    run = tmp_path / "run"
    model = build().eval()
    model.save_pretrained(run / folder)
    (run / "summary.json").write_text("{}")
    assert resolve_model_dir(run, folder) == run / folder
    assert resolve_model_dir(run / folder, folder) == run / folder
    assert resolve_model_dir(str(run), folder) == run / folder
    for path in (run, run / folder, str(run)):
        assert torch.equal(outputs(loader.from_pretrained(path)), outputs(model))
    with pytest.raises(
        SemtokError, match=rf"holds no {'AR model' if folder == 'ar' else folder} \(no config.json"
    ):
        loader.from_pretrained(tmp_path)  # a folder that holds neither


def test_one_resolver_wording(tmp_path: Path):
    for folder, noun in (("tokenizer", "tokenizer"), ("ar", "AR model"), ("judge", "judge")):
        with pytest.raises(SemtokError) as error:
            resolve_model_dir(tmp_path / "missing", folder)
        assert str(error.value) == (
            f"{noun} '{tmp_path / 'missing'}' does not exist: expected a run folder (holding {folder}/), "
            f"{'an' if folder == 'ar' else 'a'} {noun} folder or a hub repo id org/name"
        )
        with pytest.raises(SemtokError) as error:
            resolve_model_dir(tmp_path, folder)
        assert str(error.value) == f"'{tmp_path}' holds no {noun} (no config.json, no {folder}/config.json)"


def test_wrong_kind_names_both(tmp_path: Path):
    tiny_tokenizer().save_pretrained(tmp_path / "tok")
    tiny_judge().save_pretrained(tmp_path / "judge")
    with pytest.raises(SemtokError, match=r"holds a 'fsq' model, not a judge \(kind 'judge'\)"):
        Judge.from_pretrained(tmp_path / "tok")
    with pytest.raises(SemtokError, match=r"holds a 'fsq' model, not an AR model \(kind 'ar'\)"):
        ARTransformer.from_pretrained(tmp_path / "tok")
    with pytest.raises(SemtokError, match="unknown kind 'judge'"):
        Tokenizer.from_pretrained(tmp_path / "judge")
    from semtok.tokenizers import VQGANTokenizer

    with pytest.raises(SemtokError, match="holds a 'fsq' tokenizer, not a 'vqgan' one"):
        VQGANTokenizer.from_pretrained(tmp_path / "tok")


def corrupt(folder: Path, how: str) -> None:
    config = folder / "config.json"
    weights = folder / "model.safetensors"
    meta = json.loads(config.read_text())
    if how == "bad json":
        config.write_text('{"kind": "ar", ')
    elif how == "not utf-8":
        config.write_bytes(b"\xff\xfe\x00garbage")
    elif how == "no kind":
        config.write_text(json.dumps({"config": meta["config"]}))
    elif how == "no config":
        config.write_text(json.dumps({"kind": meta["kind"]}))
    elif how == "unknown config key":
        meta["config"]["widht"] = 3
        config.write_text(json.dumps(meta))
    elif how == "garbage weights":
        weights.write_bytes(b"not a safetensors file")
    elif how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:200])
    elif how == "no weights":
        weights.unlink()
    elif how == "other shapes":
        meta["config"]["width"] = 32
        config.write_text(json.dumps(meta))
    else:
        raise AssertionError(how)


CORRUPTIONS = {
    "bad json": "is not valid JSON",
    "not utf-8": "is not valid JSON",
    "no kind": "is not a semtok model config",
    "no config": "needs a 'config' mapping",
    "unknown config key": "widht",
    "garbage weights": "is not a readable safetensors file",
    "truncated weights": "is not a readable safetensors file",
    "no weights": "has no model.safetensors",
    "other shapes": "does not match the model its config.json describes",
}


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_corrupted_folder_is_one_error_line(tmp_path: Path, how: str):
    model = tiny_ar()
    model.save_pretrained(tmp_path / "run" / "ar")
    corrupt(tmp_path / "run" / "ar", how)
    with pytest.raises(SemtokError, match=CORRUPTIONS[how]) as error:
        ARTransformer.from_pretrained(tmp_path / "run")
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "run" / "ar") in message


def test_corrupted_judge_and_tokenizer(tmp_path: Path):
    tiny_judge().save_pretrained(tmp_path / "judge")
    corrupt(tmp_path / "judge", "unknown config key")
    with pytest.raises(SemtokError, match="model.widht"):  # the judge's config errors name its section
        Judge.from_pretrained(tmp_path / "judge")
    tiny_tokenizer().save_pretrained(tmp_path / "tok")
    corrupt(tmp_path / "tok", "truncated weights")
    with pytest.raises(SemtokError, match="not a readable safetensors") as error:
        Tokenizer.from_pretrained(tmp_path / "tok")
    assert "\n" not in str(error.value)


def test_save_errors(tmp_path: Path):
    model = tiny_judge()
    with pytest.raises(SemtokError, match="unknown argument"):
        model.save_pretrained(tmp_path / "a", extra={"x": 1})
    with pytest.raises(SemtokError, match="pass no config"):
        model.save_pretrained(tmp_path / "a", config={"x": 1})
    model.info = {"tensor": torch.zeros(1)}
    with pytest.raises(SemtokError, match="JSON-ready"):
        model.save_pretrained(tmp_path / "b")
    assert (
        not (tmp_path / "b" / "config.json").exists() and not (tmp_path / "b" / "model.safetensors").exists()
    )
    with pytest.raises(SemtokError, match="unknown argument"):
        Judge._from_pretrained(
            model_id=str(tmp_path),
            revision=None,
            cache_dir=None,
            force_download=False,
            local_files_only=False,
            token=None,
            strict=False,
        )


def test_folders_written_before_the_mixin_still_load(tmp_path: Path):
    """AR folders kept their provenance at the top level of config.json; tokenizers had no "info"."""
    model = tiny_ar()
    model.save_pretrained(tmp_path / "ar")
    meta = json.loads((tmp_path / "ar" / "config.json").read_text())
    del meta["info"]
    legacy = {
        **meta,
        "tokenizer": "/runs/tok/tokenizer",
        "tokens": "/runs/tokens.json",
        "class_names": ["a", "b"],
    }
    (tmp_path / "ar" / "config.json").write_text(json.dumps(legacy))
    loaded = ARTransformer.from_pretrained(tmp_path / "ar")
    assert loaded.info == {
        "tokenizer": "/runs/tok/tokenizer",
        "tokens": "/runs/tokens.json",
        "class_names": ["a", "b"],
    }
    assert torch.equal(outputs(loaded), outputs(model))
    loaded.save_pretrained(tmp_path / "again")  # saving moves the provenance under "info"
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert set(again) == {"kind", "semtok_version", "config", "info"} and again["info"] == loaded.info

    tokenizer = tiny_tokenizer().eval()
    tokenizer.save_pretrained(tmp_path / "tok")
    meta = json.loads((tmp_path / "tok" / "config.json").read_text())
    del meta["info"]
    (tmp_path / "tok" / "config.json").write_text(json.dumps(meta))
    assert Tokenizer.from_pretrained(tmp_path / "tok").info == {}


@pytest.fixture
def offline_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache under ``tmp_path`` and offline mode, with nothing read from the real environment.

    huggingface_hub reads ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` into ``huggingface_hub.constants`` at import
    time and looks them up there on each call, so the constants are patched as well as the environment.
    """
    cache = tmp_path / "hf_home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def put_in_hub_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """Lay a model folder out as a downloaded hub repo: ``models--org--name/{refs/main, snapshots/<commit>/}``."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.mark.parametrize("folder", list(MODELS))
def test_load_by_repo_id_from_the_offline_hub_cache(
    tmp_path: Path, offline_hub_cache: Path, folder: str, monkeypatch
):
    build, loader = MODELS[folder]
    model = build().eval()
    model.info = {"from": "hub"}
    model.save_pretrained(tmp_path / "local")
    snapshot = put_in_hub_cache(offline_hub_cache, "semtok-org/tiny-model", tmp_path / "local")
    monkeypatch.chdir(tmp_path)  # no local folder "semtok-org/tiny-model": the id goes to the hub cache
    assert resolve_model_dir("semtok-org/tiny-model", folder) == snapshot
    loaded = loader.from_pretrained("semtok-org/tiny-model")
    assert type(loaded) is type(model) and loaded.info == {"from": "hub"} and not loaded.training
    assert torch.equal(outputs(loaded), outputs(model))
    assert loader.from_pretrained("semtok-org/tiny-model", revision=COMMIT).info == {"from": "hub"}


def test_unknown_repo_id_offline_is_one_error_line(tmp_path: Path, offline_hub_cache: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        SemtokError,
        match="'semtok-org/absent' does not exist locally and is not in the local hub cache and HF_HUB_OFFLINE",
    ) as error:
        Tokenizer.from_pretrained("semtok-org/absent")
    assert "\n" not in str(error.value) and str(error.value).startswith("tokenizer 'semtok-org/absent'")
    (tmp_path / "semtok-org" / "absent").mkdir(parents=True)  # a local folder of that name wins over the hub
    with pytest.raises(SemtokError, match="holds no tokenizer"):
        Tokenizer.from_pretrained("semtok-org/absent")


def test_push_to_hub_comes_from_the_mixin():
    assert Tokenizer.push_to_hub is ModelHubMixin.push_to_hub
    assert (
        ARTransformer.push_to_hub is ModelHubMixin.push_to_hub
        and Judge.push_to_hub is ModelHubMixin.push_to_hub
    )
