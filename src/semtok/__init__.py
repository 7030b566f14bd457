"""semtok: image tokenizers built from image-understanding models.

``from semtok import Tokenizer`` then ``Tokenizer.from_pretrained(dir).encode(images)``.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Tokenizer", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported lazily so `semtok --help` does not pay for torch.
    if name == "Tokenizer":
        from semtok.tokenizers import Tokenizer

        return Tokenizer
    raise AttributeError(f"module 'semtok' has no attribute {name!r}")
