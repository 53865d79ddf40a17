"""Helpers shared by the benchmark scripts that write their tables into docs/ pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def merge_results(paths: list[str]) -> list[dict[str, Any]]:
    """The rows of several per-run JSON result files, in order."""
    return [row for p in paths for row in json.loads(Path(p).read_text())]


def splice_into_doc(doc: str | Path, start: str, end: str, text: str) -> bool:
    """Replace what lies between the ``start`` and ``end`` markers of ``doc`` with ``text``;
    returns False (and writes nothing) when the page or its markers are missing."""
    doc = Path(doc)
    body = doc.read_text() if doc.exists() else ""
    if start not in body:
        return False
    head, _, rest = body.partition(start)
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{start}\n{text}{end}{tail}")
    return True
