"""Importers of the field's public tokenizer checkpoints: each gives an ordinary semtok tokenizer.

``IMPORTERS[source](path, image_size=256)`` -> a tokenizer in eval mode; ``save_pretrained`` makes it a folder every
verb accepts. Sources: ``taming`` (taming-transformers VQGAN) and ``llamagen`` (LlamaGen VQ-16).
"""

from __future__ import annotations

from semtok.tokenizers.importers.llamagen import import_llamagen
from semtok.tokenizers.importers.taming import import_taming

IMPORTERS = {"taming": import_taming, "llamagen": import_llamagen}

__all__ = ["IMPORTERS", "import_llamagen", "import_taming"]
