"""The masked-decoding picture: a tiny masked run on a tiny FSQ tokenizer's token file (seconds)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from semtok.config import load_config
from semtok.data.token_file import write_token_file
from semtok.errors import SemtokError
from semtok.generators.sampler import Sampler
from semtok.generators.sampling import SamplingConfig
from semtok.pipelines.report import masked_decoding_blocks
from semtok.tokenizers import ConvNetConfig, FSQConfig, FSQTokenizer
from semtok.training import train
from semtok.training.nar import NARRunConfig
from semtok.visual.figure_file import DPI
from semtok.visual.masked_decoding import (
    cell_mask,
    hatched,
    masked_decoding_figure,
    masked_decoding_picture,
    record_masked_decoding,
)

TINY_NAR = [
    "model.depth=1",
    "model.width=32",
    "model.heads=2",
    "model.dropout=0.0",
    "train.steps=2",
    "train.batch_size=8",
    "train.warmup_steps=1",
    "train.checkpoint_every=5",
    "train.log_every=1",
]


@pytest.fixture
def masked_run(tmp_path):
    """A 2-step masked run (3 classes) on random tokens of a tiny FSQ tokenizer (12 codes, 8x8 grid)."""
    torch.manual_seed(0)
    config = FSQConfig(
        image_size=32,
        levels=(4, 3),
        conv=ConvNetConfig(
            channels=8, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=8, attn_resolutions=()
        ),
    )
    tokenizer = FSQTokenizer(config).eval().save_pretrained(tmp_path / "fsq")
    meta = {
        "tokenizer": {"path": str(tokenizer), "kind": "fsq", "config": {}},
        "num_classes": 3,
        "class_names": ["zero", "one", "two"],
    }
    ids = torch.randint(0, 12, (16, 8, 8))
    manifest = write_token_file(tmp_path / "tokens", ids, torch.arange(16) % 3, 12, meta)
    overrides = [*TINY_NAR, f"data.tokens={manifest}"]
    run = tmp_path / "suite" / "fsq" / "nar_run"  # where the bench suite keeps a row's masked model
    train("nar", load_config(NARRunConfig, "nar-mnist", overrides), run, progress=False)
    return run


def test_cell_mask_covers_the_masked_token_cells():
    grid = torch.tensor([[[-1, 3], [4, -1]]])
    mask = cell_mask(grid, 4, 6)  # 2 x 3 pixels per cell
    assert mask.shape == (1, 4, 6)
    assert mask[0, :2, :3].all() and mask[0, 2:, 3:].all()
    assert not mask[0, :2, 3:].any() and not mask[0, 2:, :3].any()
    image = torch.ones(3, 4, 6)
    lined = hatched(image, mask[0], scale=2, period=3)
    assert lined.shape == (3, 8, 12)
    changed = (lined != 1).any(0)
    assert changed[:4, :6].any() and changed[4:, 6:].any()  # lines across both masked cells, nowhere else
    assert not changed[:4, 6:].any() and not changed[4:, :6].any()


def test_masked_decoding_picture_has_a_panel_per_step_and_sample(masked_run, tmp_path):
    sampler = Sampler(masked_run)
    sampling = SamplingConfig(steps=4, top_k=0, top_p=1.0)
    labels = torch.tensor([0, 2])
    decoding = record_masked_decoding(sampler, labels, sampling, seed=1)
    assert decoding.grids.shape == (4, 2, 8, 8) and decoding.steps.shape == (4, 2, 3, 32, 32)
    masked = (decoding.grids < 0).flatten(1).sum(1).tolist()
    assert masked == sorted(masked, reverse=True) and masked[0] > 0 and masked[-1] == 0
    still = cell_mask(decoding.grids[0], 32, 32)[:, None].expand(-1, 3, -1, -1)
    assert torch.all(decoding.steps[0][still] > 0.45) and torch.all(decoding.steps[0][still] < 0.85)
    assert torch.allclose(decoding.steps[-1], decoding.final, atol=1e-5)  # nothing masked after the last step
    figure = masked_decoding_figure(decoding, sampler.class_names)
    assert len(figure.axes) == 2 * (4 + 1)
    assert figure.axes[4].get_title() == "decoded" and figure.axes[9].get_title() == ""
    assert figure.axes[0].get_title() == f"step 1\n{int((decoding.grids[0, 0] < 0).sum())} masked"
    assert figure.axes[5].get_ylabel() == "two"

    out = masked_decoding_picture(sampler, labels, tmp_path / "fig" / "masked.png", sampling, seed=1)
    with Image.open(out) as image:
        width, height = image.size
    assert (width, height) == (round((0.9 * 5 + 0.6) * DPI), round((0.9 * 2 + 0.5) * DPI))


def test_masked_decoding_picture_refuses_an_ar_model(masked_run):
    sampler = Sampler(masked_run)
    sampler.family, sampler.kind = "ar", "ar"  # as an AR run loads
    with pytest.raises(SemtokError, match="not a masked one"):
        record_masked_decoding(sampler, torch.tensor([0]))


def test_the_report_shows_the_picture_of_the_first_row_with_a_masked_model(masked_run):
    suite = masked_run.parent.parent
    rows = {"vqkd": {"label": "VQ-KD"}, "fsq": {"label": "FSQ"}}  # vqkd comes first but has no masked model
    blocks = masked_decoding_blocks(suite, {"rows": rows})
    assert [kind for kind, _ in blocks] == ["h2", "img"]
    path, caption = blocks[1][1]
    assert path == suite / "figures" / "masked_decoding_fsq.png" and path.exists()
    assert caption.startswith("FSQ, NAR") and "12 steps" in caption
    assert masked_decoding_blocks(suite, {"rows": {"vqkd": {"label": "VQ-KD"}}}) == []
