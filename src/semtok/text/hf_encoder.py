"""Text encoders from ``transformers`` model folders: BERT-style (all-MiniLM-L6-v2) and T5 encoders.

Both load a local folder in the hub layout (``config.json``, ``model.safetensors``, ``tokenizer.json`` /
``tokenizer_config.json``) or a hub name, with safetensors weights only.
"""

from __future__ import annotations

import os
from pathlib import Path

from semtok.errors import SemtokError
from semtok.text.base import TextEmbeddings, TextEncoder


def _load(source: str | os.PathLike, model_class_name: str, what: str):  # noqa: ANN202 (transformers types)
    import transformers

    local = Path(source)
    if os.sep in str(source) or local.exists():
        if not (local / "config.json").is_file():
            raise SemtokError(f"{what} '{source}': expected a model folder with config.json (the hub layout)")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(source))
        model = getattr(transformers, model_class_name).from_pretrained(str(source), use_safetensors=True)
    except (OSError, ValueError) as error:
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        raise SemtokError(
            f"{what} '{source}' could not be loaded ({type(error).__name__}: {detail})"
        ) from None
    return tokenizer, model


class HFTextEncoder(TextEncoder):
    """``AutoTokenizer`` + an encoder model (``AutoModel`` / ``T5EncoderModel``); embeddings = last hidden states."""

    def __init__(self, name: str, source: str | os.PathLike, model_class: str, max_length: int) -> None:
        super().__init__()
        self.name = name
        self.tokenizer, self.model = _load(source, model_class, f"text encoder {name}")
        self.dim = int(self.model.config.hidden_size if hasattr(self.model.config, "hidden_size") else 0)
        self.dim = self.dim or int(self.model.config.d_model)
        self.max_length = max_length
        self.source = str(source)
        self.freeze()

    def token_counts(self, prompts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(prompts, truncation=False)["input_ids"]]

    def _encode(self, prompts: list[str]) -> TextEmbeddings:
        batch = self.tokenizer(
            prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        return TextEmbeddings(hidden, batch["attention_mask"].bool())
