"""Captioned MNIST-5k (the text-to-image default) and the attribute measurements that score prompt following."""

import pytest
import torch

from semtok.data import build_dataset
from semtok.data.captioned_mnist import COLOURS, DIGIT_WORDS, HELD_OUT, SIZES, CaptionedMNIST, render
from semtok.errors import SemtokError
from semtok.metrics.attributes import measure_colour, measure_size


@pytest.fixture(scope="module")
def val():
    return CaptionedMNIST("val", 32)


def test_captions_name_every_attribute_and_items_are_fixed(val):
    assert len(val) == 500 and val.tensors()[0].shape == (500, 3, 32, 32)
    for caption, attributes in zip(val.captions, val.attributes, strict=True):
        assert attributes.colour in caption and attributes.size in caption
        assert str(attributes.digit) in caption or DIGIT_WORDS[attributes.digit] in caption
    again = CaptionedMNIST("val", 32)
    assert again.captions == val.captions and torch.equal(again.images_uint8, val.images_uint8)
    image, label = val[3]
    assert image.min() >= -1 and image.max() <= 1 and label == val.attributes[3].digit
    assert len(set(val.captions)) > 100  # several templates, colours, sizes


def test_held_out_pairs_only_in_val(val):
    train = CaptionedMNIST("train", 16)
    assert not any(train.held_out(i) for i in range(len(train)))
    seen_pairs = {(a.digit, a.colour) for a in train.attributes}
    assert len(seen_pairs) == 50 and seen_pairs.isdisjoint(HELD_OUT) and len(HELD_OUT) == 10
    held = [i for i in range(len(val)) if val.held_out(i)]
    assert (
        40 < len(held) < 150
        and {(val.attributes[i].digit, val.attributes[i].colour) for i in held} == HELD_OUT
    )


def test_measurements_read_rendered_attributes_back(val):
    images, _ = val.tensors()
    assert measure_colour(images, COLOURS) == [a.colour for a in val.attributes]
    assert measure_size(images, SIZES) == [a.size for a in val.attributes]
    digit = torch.zeros(28, 28, dtype=torch.uint8)
    digit[4:24, 12:16] = 200  # a "1": tall and thin; its size is its longer side
    for colour in COLOURS:
        for size in SIZES:
            image = render(digit, colour, size, 32)[None].float() / 127.5 - 1
            faint = (image + 1) * 0.4 - 1  # darker strokes keep their hue
            assert measure_colour(faint, COLOURS) == [colour] and measure_size(image, SIZES) == [size]


def test_build_dataset_and_bad_input():
    assert isinstance(build_dataset("mnist5k-captioned", "val", 32), CaptionedMNIST)
    with pytest.raises(SemtokError, match="augment must be 'none'"):
        build_dataset("mnist5k-captioned", "train", 32, augment="flip")
    with pytest.raises(SemtokError, match="image_size"):
        CaptionedMNIST("val", 4)


class _CountingExtractor:
    """Stands in for InceptionFeatures: features = per-image channel means, repeated; counts its passes."""

    extractor_id = "counting-extractor"

    def __init__(self):
        self.passes = 0

    def extract(self, batches, limit=None, progress=False):
        self.passes += 1
        return torch.cat([images.mean(dim=(2, 3)).repeat(1, 2) for images in batches]).numpy()[:limit]


def test_fid_reference_of_the_captioned_val_split_is_cached_by_name(val, tmp_path, monkeypatch):
    from semtok.data.build import dataset_id
    from semtok.evaluation.common import evenly_spaced, fid_reference

    monkeypatch.setenv("SEMTOK_CACHE", str(tmp_path / "cache"))
    subset, extractor = evenly_spaced(val, 20), _CountingExtractor()
    monkeypatch.chdir(tmp_path)
    features = fid_reference(subset, "mnist5k-captioned", "val", 32, extractor, 20, False, features=True)
    assert features.shape == (20, 6) and extractor.passes == 1
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the key is the name, not a path under the working directory
    mu, sigma = fid_reference(subset, "MNIST5k-Captioned", "val", 32, extractor, 20, False)
    assert extractor.passes == 1 and mu.shape == (6,) and sigma.shape == (6, 6)
    assert [p.name.split("_")[0] for p in (tmp_path / "cache" / "fid").glob("*.json")] == [
        "mnist5k-captioned"
    ]
    assert dataset_id("mnist5k") == "mnist5k" and dataset_id("mnist5k-captioned") != dataset_id("mnist5k")
    assert dataset_id("some/folder") == str(tmp_path / "elsewhere" / "some" / "folder")
