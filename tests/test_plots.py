"""Report figures: training curves from log.jsonl and the codebook picture (tiny, seeded, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from semtok.errors import SemtokError
from semtok.tokenizers import ConvNetConfig, FSQConfig, FSQTokenizer
from semtok.visual.codebook_picture import code_patches, codebook_figure, codebook_panel, codebook_picture
from semtok.visual.curves import curves_figure, plot_training_curves, read_log
from semtok.visual.figure_file import DPI


def write_log(folder: Path, records: list[dict], tail: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records) + tail
    (folder / "log.jsonl").write_text(text)
    return folder


def tiny_fsq(levels: tuple[int, ...]) -> FSQTokenizer:
    torch.manual_seed(0)
    config = FSQConfig(
        image_size=32,
        levels=levels,
        conv=ConvNetConfig(
            channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=16, attn_resolutions=()
        ),
    )
    return FSQTokenizer(config)


# --------------------------------------------------------------------------------------------- training curves


def test_read_log_skips_missing_keys_and_keeps_last_value_of_a_repeated_step(tmp_path: Path) -> None:
    run = write_log(
        tmp_path / "run",
        [
            {"step": 0, "loss/total": 2.0, "lr": 0.0, "note": "start"},
            {"step": 1, "loss/total": 1.5, "codebook/usage_window": 0.25, "flag": True},
            {"loss/total": 9.0},  # no step: skipped
            {"step": 2, "loss/total": 1.0},
            {"step": 1, "loss/total": 1.25},  # resumed run re-logs step 1
            {"step": 3, "loss/val_nll": 3},
        ],
        tail='{"step": 4, "loss/tot',  # half-written last line of a running job
    )
    assert read_log(run) == {
        "loss/total": ([0, 1, 2], [2.0, 1.25, 1.0]),
        "lr": ([0], [0.0]),
        "codebook/usage_window": ([1], [0.25]),
        "loss/val_nll": ([3], [3.0]),
    }


def test_read_log_errors_name_the_folder(tmp_path: Path) -> None:
    empty = tmp_path / "no_log_here"
    empty.mkdir()
    with pytest.raises(SemtokError, match="no_log_here.*has no log.jsonl"):
        read_log(empty)
    with pytest.raises(SemtokError, match="does not exist"):
        read_log(tmp_path / "missing")
    words = write_log(tmp_path / "words_only", [{"step": 0, "note": "x"}, {"phase": "eval"}])
    with pytest.raises(SemtokError, match="words_only.*no numeric keys"):
        read_log(words)
    broken = write_log(
        tmp_path / "broken", [{"step": 0, "a": 1.0}], tail="not json\n" + json.dumps({"step": 1})
    )
    with pytest.raises(SemtokError, match="line 2"):
        read_log(broken)


def test_plot_training_curves_writes_one_subplot_per_key_one_line_per_run(tmp_path: Path) -> None:
    steps = range(0, 50, 5)
    a = write_log(
        tmp_path / "vqkd",
        [{"step": s, "loss/total": 1 / (s + 1), "lr": 1e-4, "loss/distill": 0.5 / (s + 1)} for s in steps],
    )
    b = write_log(
        tmp_path / "ar",
        [{"step": s, "loss/train_nll": 5 - s / 50, "lr": 1e-4} for s in steps]
        + [{"step": 50, "loss/val_nll": 4.2}],
    )
    runs = {"VQ-KD": a, "AR": b}

    figure = curves_figure({name: read_log(folder) for name, folder in runs.items()})
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == [
        "loss/total",
        "loss/distill",
        "loss/train_nll",
        "loss/val_nll",
    ]
    assert [[line.get_label() for line in ax.get_lines()] for ax in visible] == [
        ["VQ-KD"],
        ["VQ-KD"],
        ["AR"],
        ["AR"],
    ]
    assert list(visible[2].get_lines()[0].get_xdata()) == list(steps)

    out = plot_training_curves(runs, tmp_path / "figs" / "curves.png", title="tiny")
    assert out == tmp_path / "figs" / "curves.png"
    with Image.open(out) as image:
        image.verify()
    with Image.open(out) as image:  # 4 keys -> 3 columns x 2 rows of 4.2 x 3.0 inches (+0.4 for the title)
        assert image.format == "PNG"
        assert image.size == (round(3 * 4.2 * DPI), round((2 * 3.0 + 0.4) * DPI))

    chosen = plot_training_curves(runs, tmp_path / "nll.png", keys=["loss/train_nll"])
    with Image.open(chosen) as image:
        assert image.size == (round(4.2 * DPI), round(3.0 * DPI))
    with pytest.raises(SemtokError, match="loss/missing"):
        plot_training_curves(runs, tmp_path / "x.png", keys=["loss/missing"])
    with pytest.raises(SemtokError, match="nothing_logged.*has no log.jsonl"):
        (tmp_path / "nothing_logged").mkdir()
        plot_training_curves({**runs, "bad": tmp_path / "nothing_logged"}, tmp_path / "y.png")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


# ------------------------------------------------------------------------------------------- codebook patches


def numbered_images(n: int, size: int) -> torch.Tensor:
    """[n, 3, size, size] whose every value is distinct, so a cut-out tells exactly where it came from."""
    return torch.arange(n * 3 * size * size, dtype=torch.float32).reshape(n, 3, size, size)


def test_code_patches_cuts_the_exact_cells_distinct_images_first() -> None:
    images = numbered_images(3, 8)
    ids = torch.zeros(3, 4, 4, dtype=torch.long)  # 4x4 grid on 8 px: 2x2 cells
    ids[0, 0, 1] = ids[0, 3, 3] = ids[2, 1, 2] = 7

    exact = code_patches(ids, images, code=7, patches=5, context=1, seed=None)
    # raster order, but one per image first: (0,0,1), (2,1,2), then (0,3,3); only 3 occurrences exist
    assert exact.cells.tolist() == [[0, 0, 1], [2, 1, 2], [0, 3, 3]]
    assert exact.pixels.shape == (3, 3, 2, 2)
    assert torch.equal(exact.pixels[0], images[0, :, 0:2, 2:4])
    assert torch.equal(exact.pixels[1], images[2, :, 2:4, 4:6])
    assert torch.equal(exact.pixels[2], images[0, :, 6:8, 6:8])
    assert exact.boxes.tolist() == [[0, 0, 2, 2]] * 3

    two = code_patches(ids, images, code=7, patches=2, context=2, seed=None)
    # 4x4 windows centred on the cell, shifted inside the image at the border
    assert two.pixels.shape == (2, 3, 4, 4)
    assert torch.equal(
        two.pixels[0], images[0, :, 0:4, 1:5]
    )  # cell rows 0:2 -> window 0:4 (clamped), cols 2:4 -> 1:5
    assert torch.equal(two.pixels[1], images[2, :, 1:5, 3:7])
    assert two.boxes.tolist() == [[0, 1, 2, 3], [1, 1, 3, 3]]
    for pixels, box, (n, i, j) in zip(two.pixels, two.boxes.tolist(), two.cells.tolist()):
        top, left, bottom, right = box
        assert torch.equal(
            pixels[:, top:bottom, left:right], images[n, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
        )

    none = code_patches(ids, images, code=3, patches=4)
    assert none.pixels.shape == (0, 3, 4, 4) and none.cells.shape == (0, 3)
    with pytest.raises(SemtokError, match="images"):
        code_patches(ids, images[:2], code=7, patches=2)
    with pytest.raises(SemtokError, match="context"):
        code_patches(ids, images, code=7, patches=2, context=0.5)


def test_code_patches_seeded_choice_is_reproducible_and_only_holds_the_code() -> None:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 3, (20, 4, 4), generator=generator)
    images = numbered_images(20, 16)
    first = code_patches(ids, images, code=1, patches=6, seed=5)
    again = code_patches(ids, images, code=1, patches=6, seed=5)
    assert torch.equal(first.pixels, again.pixels) and torch.equal(first.cells, again.cells)
    cells = first.cells.tolist()
    assert all(int(ids[n, i, j]) == 1 for n, i, j in cells)
    assert len({n for n, _, _ in cells}) == 6  # 6 distinct images before any repeats
    assert not torch.equal(first.cells, code_patches(ids, images, code=1, patches=6, seed=None).cells)


def test_codebook_panel_shows_most_frequent_codes_and_the_figure_one_panel_per_tokenizer() -> None:
    ids = torch.tensor([[[5, 5], [5, 2]], [[2, 9], [5, 9]]])  # counts: 5 -> 4, 2 -> 2, 9 -> 2
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    panel = codebook_panel("A", ids, images, num_codes=10, codes=4, patches=3)
    assert panel.codes == [5, 2, 9] and panel.counts == [4, 2, 2]  # only 3 codes used; tie 2 vs 9 -> lower id
    assert (panel.codes_used, panel.tokens) == (3, 8)
    # code 5: one from each image, then a second from image 0; codes 2 and 9 have only 2 occurrences each
    assert [len(p.pixels) for p in panel.patches] == [3, 2, 2]
    sources = panel.patches[0].cells[:, 0].tolist()
    assert sorted(sources[:2]) == [0, 1] and sources[2] == 0
    other = codebook_panel("B", ids, images, num_codes=10, codes=1, patches=3)
    figure = codebook_figure([panel, other])
    assert len(figure.axes) == 2
    assert [ax.get_title().splitlines()[0] for ax in figure.axes] == ["A", "B"]
    assert [t.get_text().splitlines()[0] for t in figure.axes[0].get_yticklabels()] == ["#5", "#2", "#9"]
    assert len(figure.axes[1].get_yticklabels()) == 1


def test_codebook_picture_from_run_and_tokenizer_folders(tmp_path: Path, image_folder: Path) -> None:
    tiny_fsq((4, 3)).save_pretrained(tmp_path / "run" / "tokenizer")  # a run folder
    tiny_fsq((3, 3)).save_pretrained(tmp_path / "fsq9")  # a tokenizer folder
    out = codebook_picture(
        {"FSQ-12": tmp_path / "run", "FSQ-9": tmp_path / "fsq9"},
        str(image_folder),
        tmp_path / "pics" / "codebook.png",
        codes=2,
        patches=3,
        max_images=5,
    )
    assert out == tmp_path / "pics" / "codebook.png"
    with Image.open(out) as image:
        image.verify()
    with Image.open(out) as image:  # two panels of 3 patch columns side by side, 2 code rows
        assert image.size == (round(2 * (0.55 * 3 + 1.2) * DPI), round((0.55 * 2 + 1.0) * DPI))

    with pytest.raises(SemtokError, match="holds no tokenizer"):
        codebook_picture({"x": image_folder}, str(image_folder), tmp_path / "bad.png")
    with pytest.raises(SemtokError, match="codes must be an int >= 1"):
        codebook_picture({"x": tmp_path / "fsq9"}, str(image_folder), tmp_path / "bad.png", codes=0)
    assert not (tmp_path / "bad.png").exists()
