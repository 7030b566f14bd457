"""Figures for the benchmark report, by one name: training curves (:mod:`semtok.visual.curves`) and the
codebook picture (:mod:`semtok.visual.codebook_picture`), both written by :mod:`semtok.visual.figure_file`."""

from semtok.visual.codebook_picture import (
    CodebookPanel,
    CodePatches,
    code_patches,
    codebook_figure,
    codebook_panel,
    codebook_picture,
)
from semtok.visual.curves import curves_figure, plot_training_curves, read_log
from semtok.visual.figure_file import DPI

__all__ = [
    "DPI",
    "CodePatches",
    "CodebookPanel",
    "code_patches",
    "codebook_figure",
    "codebook_panel",
    "codebook_picture",
    "curves_figure",
    "plot_training_curves",
    "read_log",
]
