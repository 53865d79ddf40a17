"""Append-only JSONL files that survive interruption (each ARMAP stage resumes from them)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of ``path``; a damaged line (e.g. cut by a crash mid-write) is skipped."""
    p = Path(path)
    if not p.is_file():
        return
    with open(p, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                yield row


def done_ids(path: str | Path, key: str = "id") -> set[Any]:
    """The ``key`` values already written to ``path`` (what a resumed stage skips)."""
    return {row[key] for row in read_jsonl(path) if key in row}


def repair(path: str | Path) -> None:
    """Drop a partial last line so that appended rows start on a fresh line."""
    p = Path(path)
    if p.is_file() and p.stat().st_size:
        data = p.read_bytes()
        if not data.endswith(b"\n"):
            p.write_bytes(data[: data.rfind(b"\n") + 1])


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Append ``rows`` (flushed); returns how many were written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(p, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
            n += 1
        f.flush()
    return n
