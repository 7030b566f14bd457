"""Data sets, transforms and loaders (fast: MNIST-5k is parsed once per process)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features

from semtok.data import (
    IMAGE_EXTENSIONS,
    ImageFolderDataset,
    MNIST5k,
    SkippedFileWarning,
    TrainTransform,
    ValTransform,
    build_dataset,
    item_generator,
    scan_image_folder,
    to_rgb,
)
from semtok.errors import SemtokError
from semtok.training.batches import batch_stream, epoch_batches

# ---------------------------------------------------------------- MNIST-5k


@pytest.fixture(scope="module")
def mnist_train() -> MNIST5k:
    return MNIST5k("train", image_size=32)


@pytest.fixture(scope="module")
def mnist_val() -> MNIST5k:
    return MNIST5k("val", image_size=32)


def test_mnist_sizes_and_per_class_counts(mnist_train, mnist_val):
    assert len(mnist_train) == 4500 and len(mnist_val) == 500
    assert mnist_train.num_classes == 10 and mnist_train.class_names == [str(d) for d in range(10)]
    assert torch.bincount(mnist_train.labels, minlength=10).tolist() == [450] * 10
    assert torch.bincount(mnist_val.labels, minlength=10).tolist() == [50] * 10
    assert "4500 images" in mnist_train.describe()


def test_mnist_split_is_not_positional(mnist_val):
    # the source is sorted by class: a positional split would take indices 4500.. (all nines)
    per_class = mnist_val.indices.reshape(10, 50) - np.arange(10)[:, None] * 500
    assert per_class.min() >= 0 and per_class.max() < 500
    assert not all((row == np.arange(450, 500)).all() for row in np.sort(per_class, axis=1))


def test_mnist_deterministic(mnist_train):
    again = MNIST5k("train", image_size=32)
    assert np.array_equal(again.indices, mnist_train.indices)
    assert torch.equal(again.images_uint8, mnist_train.images_uint8)
    assert torch.equal(again.labels, mnist_train.labels)


def test_mnist_train_val_disjoint(mnist_train, mnist_val):
    assert not set(mnist_train.indices.tolist()) & set(mnist_val.indices.tolist())
    train_rows = {
        row.tobytes() for row in mnist_train.images_uint8[:, 0].reshape(len(mnist_train), -1).numpy()
    }
    val_rows = {row.tobytes() for row in mnist_val.images_uint8[:, 0].reshape(len(mnist_val), -1).numpy()}
    assert not train_rows & val_rows


def test_mnist_items(mnist_train):
    image, label = mnist_train[123]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert isinstance(label, int) and label == int(mnist_train.labels[123])
    images, labels = mnist_train.tensors()
    assert images.shape == (4500, 3, 32, 32) and labels.dtype == torch.int64
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.min() == -1.0 and images.max() == 1.0  # background black, strokes white
    assert torch.equal(images[123], image)
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
    assert not mnist_train.is_random
    with pytest.raises(IndexError):
        mnist_train[4500]


def test_mnist_other_size():
    small = MNIST5k("val", image_size=16)
    assert small[0][0].shape == (3, 16, 16)
    with pytest.raises(SemtokError, match="split"):
        MNIST5k("test")


def test_mnist_augmentation_reproducible():
    train = MNIST5k("train", 32, transform=TrainTransform(32, scale=(0.3, 1.0)), seed=3)
    assert train.is_random
    first = torch.stack([train[i][0] for i in range(8)])
    assert torch.equal(first, torch.stack([train[i][0] for i in range(8)]))
    train.set_epoch(1)
    second = torch.stack([train[i][0] for i in range(8)])
    assert not torch.equal(first, second)
    assert second.min() >= -1.0 and second.max() <= 1.0 and second.shape == (8, 3, 32, 32)


# ---------------------------------------------------------------- transforms


def _pattern(width: int = 64, height: int = 48) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_train_transform_reproducible_per_seed_epoch_index():
    transform = TrainTransform(32)
    image = _pattern()
    a = transform(image, item_generator(0, 0, 5))
    b = transform(image, item_generator(0, 0, 5))
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32
    assert a.min() >= -1.0 and a.max() <= 1.0
    assert torch.equal(a, b)
    assert not torch.equal(a, transform(image, item_generator(0, 1, 5)))
    assert not torch.equal(a, transform(image, item_generator(0, 0, 6)))
    assert not torch.equal(a, transform(image, item_generator(1, 0, 5)))
    assert transform.is_random


def test_train_transform_crop_params_stay_inside_and_do_not_touch_global_rng():
    transform = TrainTransform(32, scale=(0.08, 1.0))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    for index in range(200):
        top, left, h, w = transform.get_params(48, 64, item_generator(0, 0, index))
        assert 0 <= top and 0 <= left and 0 < h and 0 < w and top + h <= 48 and left + w <= 64
    assert torch.equal(state, torch.get_rng_state())


def test_val_transform_deterministic_and_square():
    transform = ValTransform(32)
    assert not transform.is_random
    image = _pattern(64, 48)
    a, b = transform(image), transform(image)
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    # resize shorter side, then center crop: a 2:1 image keeps its middle half
    wide = Image.new("RGB", (64, 32), (255, 0, 0))
    wide.paste((0, 0, 255), (16, 0, 48, 32))
    out = ValTransform(32)(wide)
    assert torch.allclose(out[:, :, 4:-4], torch.tensor([-1.0, -1.0, 1.0]).view(3, 1, 1))
    # tensors and PIL images give the same result when no resampling is needed
    tensor = torch.from_numpy(np.asarray(_pattern(32, 32)).copy()).permute(2, 0, 1)
    assert torch.equal(transform(tensor), transform(_pattern(32, 32)))


def test_flip_only_transform():
    transform = TrainTransform(32, crop=False)
    image = _pattern(32, 32)
    plain = ValTransform(32)(image)
    outs = [transform(image, item_generator(0, 0, i)) for i in range(16)]
    assert all(torch.equal(o, plain) or torch.equal(o, plain.flip(-1)) for o in outs)
    assert any(torch.equal(o, plain.flip(-1)) for o in outs) and any(torch.equal(o, plain) for o in outs)
    assert not TrainTransform(32, crop=False, hflip=False).is_random


def test_bad_transform_options():
    with pytest.raises(SemtokError, match="crop_scale"):
        TrainTransform(32, scale=(0.5, 0.1))
    with pytest.raises(SemtokError, match="image_size"):
        ValTransform(0)
    with pytest.raises(SemtokError, match="augment"):
        build_dataset("mnist5k", "train", 32, augment="rotate")


# ---------------------------------------------------------------- to_rgb


def test_to_rgb_16bit_scales_not_clips(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 1000]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    expected = [0, 100, 255, round(1000 / 257)]
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == expected
    as_int = Image.fromarray(values.astype(np.int32), mode="I")
    assert np.asarray(to_rgb(as_int))[0, :, 0].tolist() == expected
    path = tmp_path / "sixteen.png"
    image.save(path)
    with Image.open(path) as reopened:
        assert reopened.mode in ("I;16", "I")
        rgb = to_rgb(reopened)
    assert rgb.mode == "RGB" and np.asarray(rgb)[0, :, 1].tolist() == expected


def test_to_rgb_transparency_on_white():
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (10, 20, 30, 255))
    assert np.asarray(to_rgb(rgba)).tolist() == [[[255, 255, 255], [10, 20, 30]]]
    la = Image.new("LA", (1, 1), (0, 0))
    assert np.asarray(to_rgb(la)).tolist() == [[[255, 255, 255]]]
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    assert np.asarray(to_rgb(palette)).tolist() == [[[255, 255, 255], [200, 10, 10]]]
    assert to_rgb(Image.new("CMYK", (1, 1), (0, 255, 255, 0))).getpixel((0, 0)) == (255, 0, 0)
    assert to_rgb(Image.new("L", (1, 1), 77)).getpixel((0, 0)) == (77, 77, 77)
    assert to_rgb(Image.new("1", (1, 1), 1)).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("F", (1, 1), 0.5)).getpixel((0, 0)) == (128, 128, 128)


# ---------------------------------------------------------------- image folders


def _rgb_array(seed: int, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _write_all_modes(directory: Path) -> list[str]:
    """One image per mode / format; returns the relative paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(_rgb_array(0))
    written = {}
    written["gray.png"] = rgb.convert("L")
    written["palette.png"] = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    transparent = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    transparent.info["transparency"] = 0
    written["palette_transparent.png"] = transparent
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    written["rgba.png"] = rgba
    written["la.png"] = rgb.convert("LA")
    written["cmyk.jpg"] = rgb.convert("CMYK")
    written["sixteen.png"] = Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    written["rgb.png"] = rgb
    written["rgb.jpeg"] = rgb
    written["rgb.bmp"] = rgb
    written["rgb.gif"] = rgb
    written["rgb.tiff"] = rgb
    if features.check("webp"):
        written["rgb.webp"] = rgb
    for name, image in written.items():
        if name == "palette_transparent.png":
            image.save(directory / name, transparency=0)
        else:
            image.save(directory / name)
    return sorted(written)


def test_folder_labelled_all_modes_and_nested(tmp_path):
    names = _write_all_modes(tmp_path / "cat")
    (tmp_path / "dog" / "deep" / "deeper").mkdir(parents=True)
    Image.fromarray(_rgb_array(1)).save(tmp_path / "dog" / "deep" / "deeper" / "x.png")
    Image.fromarray(_rgb_array(2)).save(tmp_path / "dog" / "a.jpg")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    Image.fromarray(_rgb_array(3)).save(tmp_path / ".hidden" / "h.png")
    with pytest.warns(UserWarning, match="without images"):
        dataset = ImageFolderDataset(tmp_path, image_size=24)
    assert dataset.labelled and dataset.class_names == ["cat", "dog"] and dataset.num_classes == 2
    assert len(dataset) == len(names) + 2 and dataset.skipped_files == []
    relative = [Path(p).relative_to(tmp_path.resolve()).as_posix() for p, _ in dataset.samples]
    assert relative == [f"cat/{n}" for n in names] + ["dog/a.jpg", "dog/deep/deeper/x.png"]
    labels = [dataset[i][1] for i in range(len(dataset))]
    assert labels == [0] * len(names) + [1, 1]
    for i in range(len(dataset)):
        image, _ = dataset[i]
        assert image.shape == (3, 24, 24) and image.dtype == torch.float32
        assert image.min() >= -1.0 and image.max() <= 1.0
    sixteen = dataset.load_image(names.index("sixteen.png"))
    gray = dataset.load_image(names.index("gray.png"))
    assert np.array_equal(np.asarray(sixteen), np.asarray(gray))  # 16-bit = 8-bit * 257 -> same pixels
    assert "2 classes" in dataset.describe()


def test_folder_flat_is_unlabeled(tmp_path):
    _write_all_modes(tmp_path)
    dataset = ImageFolderDataset(tmp_path, image_size=16)
    assert not dataset.labelled and dataset.num_classes == 0 and dataset.class_names == []
    assert {dataset[i][1] for i in range(len(dataset))} == {-1}
    forced = ImageFolderDataset(tmp_path, image_size=16, labelled=False)
    assert forced.samples == dataset.samples


def test_folder_skips_garbage_and_truncated_files(tmp_path):
    for i in range(3):
        Image.fromarray(_rgb_array(i, 64)).save(tmp_path / f"good{i}.jpg", quality=95)
    (tmp_path / "garbage.png").write_bytes(b"this is not a png at all" * 10)
    Image.fromarray(_rgb_array(9, 64)).save(tmp_path / "good1_truncated.jpg", quality=95)
    data = (tmp_path / "good1_truncated.jpg").read_bytes()
    (tmp_path / "good1_truncated.jpg").write_bytes(data[: len(data) // 2])

    with pytest.warns(SkippedFileWarning, match="garbage.png"):
        dataset = ImageFolderDataset(tmp_path, image_size=16)
    assert [Path(p).name for p in dataset.skipped_files] == ["garbage.png"]
    assert len(dataset) == 4
    truncated = [Path(p).name for p, _ in dataset.samples].index("good1_truncated.jpg")
    with pytest.warns(SkippedFileWarning, match="good1_truncated.jpg"):
        image, label = dataset[truncated]
    assert image.shape == (3, 16, 16) and label == -1
    assert [Path(p).name for p in dataset.skipped_files] == ["garbage.png", "good1_truncated.jpg"]
    # the replacement is the next readable file; a known-bad file is not retried (no second warning)
    assert torch.equal(image, ValTransform(16)(dataset.load_image(truncated + 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, _ = dataset[truncated]
    assert torch.equal(again, image) and len(dataset.skipped_files) == 2


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SemtokError, match="empty"):
        ImageFolderDataset(tmp_path / "empty", image_size=16)
    (tmp_path / "text_only" / "sub").mkdir(parents=True)
    (tmp_path / "text_only" / "sub" / "a.txt").write_text("x")
    with pytest.raises(SemtokError, match="text_only"):
        ImageFolderDataset(tmp_path / "text_only", image_size=16)
    with pytest.raises(SemtokError, match="missing"):
        ImageFolderDataset(tmp_path / "missing", image_size=16)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"garbage")
    with pytest.warns(SkippedFileWarning), pytest.raises(SemtokError, match="bad"):
        ImageFolderDataset(tmp_path / "bad", image_size=16)


def test_image_extensions_cover_common_formats():
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"} <= IMAGE_EXTENSIONS
    assert not {".pdf", ".mpg", ".txt"} & IMAGE_EXTENSIONS


def test_folder_augmentation_reproducible(tmp_path):
    for i in range(4):
        Image.fromarray(_rgb_array(i, 48)).save(tmp_path / f"{i}.png")
    dataset = ImageFolderDataset(tmp_path, 32, TrainTransform(32), seed=7)
    assert dataset.is_random
    first = [dataset[i][0] for i in range(4)]
    assert all(torch.equal(a, dataset[i][0]) for i, a in enumerate(first))
    dataset.set_epoch(1)
    assert not all(torch.equal(a, dataset[i][0]) for i, a in enumerate(first))


# ---------------------------------------------------------------- build_dataset


def _class_tree(root: Path, counts: dict[str, int]) -> None:
    for c, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(_rgb_array(100 * c + i, 20)).save(root / name / f"{i:03d}.png")


def test_build_dataset_train_val_subfolders(tmp_path):
    _class_tree(tmp_path / "train", {"a": 3, "b": 2, "c": 2})
    _class_tree(tmp_path / "val", {"a": 1, "c": 1})  # val lacks class b: labels must still match train
    train = build_dataset(tmp_path, "train", 16, augment="crop_flip", seed=1)
    val = build_dataset(tmp_path, "val", 16, augment="crop_flip")
    assert train.class_names == val.class_names == ["a", "b", "c"]
    assert [label for _, label in val.samples] == [0, 2]
    assert train.is_random and not val.is_random
    (tmp_path / "val" / "z").mkdir()
    Image.fromarray(_rgb_array(5, 20)).save(tmp_path / "val" / "z" / "0.png")
    with pytest.raises(SemtokError, match="z"):
        build_dataset(tmp_path, "val", 16)


def test_build_dataset_deterministic_split(tmp_path):
    _class_tree(tmp_path, {"a": 20, "b": 9, "c": 1})
    train = build_dataset(tmp_path, "train", 16)
    val = build_dataset(tmp_path, "val", 16)
    train_paths = {p for p, _ in train.samples}
    val_paths = {p for p, _ in val.samples}
    assert not train_paths & val_paths and len(train_paths | val_paths) == 30
    assert [label for _, label in val.samples] == [
        0,
        0,
        1,
    ]  # 10% per class, rounded; lone file stays in train
    assert build_dataset(tmp_path, "val", 16).samples == val.samples
    assert train.class_names == val.class_names == ["a", "b", "c"]

    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.fromarray(_rgb_array(i, 20)).save(flat / f"{i}.png")
    assert len(build_dataset(flat, "val", 16)) == 1 and len(build_dataset(flat, "train", 16)) == 2


def test_build_dataset_errors(tmp_path):
    with pytest.raises(SemtokError, match="mnist5k"):
        build_dataset(tmp_path / "nope", "train", 16)
    with pytest.raises(SemtokError, match="split"):
        build_dataset("mnist5k", "test", 16)
    _class_tree(tmp_path / "only" / "train", {"a": 2})
    with pytest.raises(SemtokError, match="val"):
        build_dataset(tmp_path / "only", "train", 16)


def test_build_dataset_mnist():
    train = build_dataset("mnist5k", "train", 32, augment="crop_flip", seed=2)
    val = build_dataset("MNIST5k", "val", 32, augment="crop_flip")
    assert isinstance(train, MNIST5k) and train.is_random and train.seed == 2
    assert not val.is_random and len(val) == 500


# ---------------------------------------------------------------- batch order (training/batches.py)


def test_epoch_batches_deterministic_and_sharded():
    first = epoch_batches(50, 8, seed=0, epoch=0)
    assert first == epoch_batches(50, 8, seed=0, epoch=0)
    assert len(first) == 6 and len(set(sum(first, []))) == 48  # the incomplete last batch is dropped
    assert first != epoch_batches(50, 8, seed=1, epoch=0) and first != epoch_batches(50, 8, seed=0, epoch=1)
    shards = [epoch_batches(50, 8, seed=0, epoch=0, rank=r, world_size=2) for r in range(2)]
    for step, batch in enumerate(first):
        assert shards[0][step] + shards[1][step] == batch


def test_batch_stream_resumes_exactly_with_augmentation():
    dataset = MNIST5k("val", 32, transform=TrainTransform(32), seed=0)
    steps_per_epoch = len(epoch_batches(len(dataset), 16, 5, 0))
    stream = batch_stream(dataset, 16, seed=5, start_step=0, rank=0, world_size=1)
    straight = [next(stream) for _ in range(steps_per_epoch + 3)]
    resumed = batch_stream(
        dataset, 16, seed=5, start_step=steps_per_epoch + 1, rank=0, world_size=1, num_workers=2
    )
    for (xa, ya, ia), (xb, yb, ib) in zip(straight[steps_per_epoch + 1 :], [next(resumed) for _ in range(2)]):
        assert torch.equal(ia, ib) and torch.equal(xa, xb) and torch.equal(ya, yb)
    assert straight[0][0].shape == (16, 3, 32, 32) and straight[0][1].dtype == torch.int64


def test_scan_reports_folder_and_classes(tmp_path):
    _class_tree(tmp_path, {"x": 2, "y": 1})
    scan = scan_image_folder(tmp_path)
    assert (
        scan.labelled and scan.class_names == ["x", "y"] and scan.num_classes == 2 and len(scan.samples) == 3
    )


def test_labelled_folder_ignores_top_level_files_with_warning(tmp_path):
    _class_tree(tmp_path, {"x": 2})
    Image.fromarray(_rgb_array(7, 20)).save(tmp_path / "loose.png")
    with pytest.warns(UserWarning, match="top level"):
        dataset = ImageFolderDataset(tmp_path, 16)
    assert len(dataset) == 2 and dataset.class_names == ["x"]
    everything = ImageFolderDataset(tmp_path, 16, labelled=False)
    assert len(everything) == 3 and everything.num_classes == 0
