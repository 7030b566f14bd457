"""``OUT/log.jsonl``: every logged scalar as a JSON line, an Accelerate tracker beside TensorBoard / W&B."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker


class JSONLinesTracker(GeneralTracker):
    """Appends ``{"step": step, **values}`` to ``OUT/log.jsonl`` (main process only).

    ``resume_step``: lines of a killed session past this step are dropped first, so a resumed run's log
    has each step once.
    """

    name = "jsonl"
    requires_logging_directory = False

    def __init__(self, out_dir: str | Path, resume_step: int = 0) -> None:
        super().__init__()
        self.path = Path(out_dir) / "log.jsonl"
        self.resume_step = resume_step
        self.file: Any = None

    def start(self) -> None:
        if self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= self.resume_step
            ]
            self.path.write_text("".join(f"{line}\n" for line in kept))
        self.file = open(self.path, "a")  # noqa: SIM115 - closed in finish()

    @property
    def tracker(self) -> Any:
        return self.file

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.file.write(json.dumps({"step": step, **values}) + "\n")
        self.file.flush()

    def finish(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
