"""What every data set's ``__getitem__`` shares: reading a (possibly negative) item index."""

from __future__ import annotations

import operator

__all__ = ["checked_index"]


def checked_index(index: int, length: int) -> int:
    """``index`` (any int-like, negative counts from the end) as a position in ``[0, length)``.

    Raises ``IndexError`` (what ``DataLoader`` and ``iter`` expect) when it lies outside.
    """
    index = operator.index(index)
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for {length} images")
    return index
