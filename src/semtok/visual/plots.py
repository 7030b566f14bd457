"""The report figures under their first module name, so ``from semtok.visual.plots import ...`` keeps working:
training curves live in :mod:`semtok.visual.curves`, the codebook picture in
:mod:`semtok.visual.codebook_picture`, the PNG writing in :mod:`semtok.visual.figure_file`."""

from semtok.visual.codebook_picture import *  # noqa: F403 - every public name of the codebook picture
from semtok.visual.curves import *  # noqa: F403 - every public name of the training curves
from semtok.visual.figure_file import DPI  # noqa: F401
