import pytest
import torch

from semtok.errors import SemtokError
from semtok.teachers import TeacherConfig
from semtok.tokenizers import Tokenizer, VQKDConfig, VQKDQuantizerConfig, VQKDTokenizer


def tiny_config(**changes) -> VQKDConfig:
    base = dict(
        image_size=32, patch_size=8, encoder="tiny", encoder_depth=1, quantizer=VQKDQuantizerConfig(code_dim=8, num_codes=16),
        decoder_width=32, decoder_heads=2, teacher=TeacherConfig(name="effnet-lite0", dim=112),
    )  # fmt: skip
    return VQKDConfig(**{**base, **changes})


def test_forward_shapes_and_gradients():
    torch.manual_seed(0)
    model = VQKDTokenizer(tiny_config()).train()
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    decoded, ids, aux = model(images)
    assert decoded.shape == (4, 112, 4, 4) and ids.shape == (4, 4, 4) and ids.dtype == torch.int64
    (decoded.square().mean() + aux["loss"]).backward()
    assert model.encoder.patch_embed.weight.grad is not None
    assert model.encoder.patch_embed.weight.grad.abs().sum() > 0


def test_encode_other_image_size_interpolates_positions():
    model = VQKDTokenizer(tiny_config()).eval()
    ids = model.encode(torch.zeros(2, 3, 48, 48))
    assert ids.shape == (2, 6, 6)
    assert model.decode_features(ids).shape == (2, 112, 6, 6)


def test_bad_image_shapes():
    model = VQKDTokenizer(tiny_config()).eval()
    with pytest.raises(SemtokError, match="patch size"):
        model.encode(torch.zeros(1, 3, 30, 30))
    with pytest.raises(SemtokError, match=r"\[B, 3, H, W\]"):
        model.encode(torch.zeros(1, 1, 32, 32))


def test_save_and_load_pretrained(tmp_path):
    torch.manual_seed(0)
    model = VQKDTokenizer(tiny_config()).train()
    model(torch.rand(8, 3, 32, 32) * 2 - 1)  # k-means init + one EMA update
    model.eval()
    model.save_pretrained(tmp_path / "tok")
    assert {p.name for p in (tmp_path / "tok").iterdir()} == {"config.json", "model.safetensors", "README.md"}
    loaded = Tokenizer.from_pretrained(tmp_path / "tok")
    assert isinstance(loaded, VQKDTokenizer) and loaded.config == model.config
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.equal(loaded.encode(images), model.encode(images))
    with pytest.raises(SemtokError, match="decoder"):
        loaded.decode(loaded.encode(images))


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(SemtokError, match="does not exist"):
        Tokenizer.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SemtokError, match="no config.json"):
        Tokenizer.from_pretrained(tmp_path / "empty")
    model = VQKDTokenizer(tiny_config())
    model.save_pretrained(tmp_path / "tok")
    (tmp_path / "tok" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SemtokError, match="not a readable safetensors"):
        Tokenizer.from_pretrained(tmp_path / "tok")
    other = VQKDTokenizer(tiny_config(quantizer=VQKDQuantizerConfig(code_dim=8, num_codes=32)))
    other.save_pretrained(tmp_path / "other")
    (tmp_path / "tok" / "model.safetensors").write_bytes(
        (tmp_path / "other" / "model.safetensors").read_bytes()
    )
    with pytest.raises(SemtokError, match="does not match"):
        Tokenizer.from_pretrained(tmp_path / "tok")


def test_encode_never_changes_the_codebook_even_in_training_mode():
    torch.manual_seed(0)
    model = VQKDTokenizer(tiny_config()).train()
    images = torch.rand(8, 3, 32, 32) * 2 - 1
    model(images)  # k-means init + one EMA update
    before = model.quantizer.codebook.clone()
    model.encode(images)
    assert model.training and torch.equal(model.quantizer.codebook, before)
    model(images)
    assert not torch.equal(model.quantizer.codebook, before)  # forward in training mode does update it
