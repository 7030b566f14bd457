"""The bench suite's last measured main table, shipped with the package, so ``semtok demo`` can put its own
numbers beside it (``suite_reference.json``; written from a suite's ``results.json`` by
:func:`reference_from_results`, e.g. ``python -m semtok.pipelines.suite_reference runs/bench/suite-mnist``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REFERENCE_FILE = Path(__file__).with_name("suite_reference.json")
KEYS = ("rfid", "probe_top1", "gfid", "class_accuracy", "nar_gfid", "nar_class_accuracy")


def load_reference(path: Path = REFERENCE_FILE) -> dict[str, Any] | None:
    """The shipped table: ``{"source", "budget", "seeds", "rows": [{"row", "label", KEY, KEY_std...}]}``; None if
    the file is absent or unreadable (the demo report then says so)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def reference_from_results(results: dict[str, Any], source: str) -> dict[str, Any]:
    """The main (non-ablation) rows of a suite's ``results.json`` with their means and spreads of :data:`KEYS`."""
    rows = []
    for name, row in results.get("rows", {}).items():
        if row.get("ablation"):
            continue
        entry = {"row": name, "label": row.get("label", name), "chains": row.get("chains")}
        for key in KEYS:
            entry[key] = row.get(key)
            entry[f"{key}_std"] = row.get(f"{key}_std")
        rows.append(entry)
    return {"source": source, "budget": results.get("budget"), "rows": rows}


def main(argv: list[str]) -> None:
    suite_dir = Path(argv[0])
    results = json.loads((suite_dir / "results.json").read_text())
    reference = reference_from_results(results, f"semtok bench --suite {results.get('suite')} ({suite_dir})")
    REFERENCE_FILE.write_text(json.dumps(reference, indent=2) + "\n")
    print(f"wrote {REFERENCE_FILE}")


if __name__ == "__main__":
    main(sys.argv[1:])
