"""``checkpoints/latest``: a relative symlink to the newest checkpoint, replaced atomically;
the JSON pointer file of earlier versions is still read."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from agentrl.checkpoint import (
    CheckpointError,
    CheckpointManager,
    resolve_checkpoint,
    verify_checkpoint,
)


def _save(manager: CheckpointManager, step: int) -> Path:
    return manager.save(
        step, lambda d: (d / "weights.bin").write_bytes(b"w%d" % step), {"config": {}}
    )


def test_latest_is_a_relative_link_that_opens_as_a_folder(tmp_path):
    run = tmp_path / "run"
    root = run / "checkpoints"
    manager = CheckpointManager(root, keep=2)
    for step in (1, 2, 3):
        _save(manager, step)
    link = root / "latest"
    assert link.is_symlink() and os.readlink(link) == "step_000003"
    assert link.resolve() == (root / "step_000003").resolve()
    assert (link / "weights.bin").read_bytes() == b"w3"  # files open through the link
    assert sorted(p.name for p in link.iterdir()) == ["manifest.json", "weights.bin"]
    assert verify_checkpoint(link)["step"] == 3
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000002", "step_000003"]
    assert manager.latest() == root / "step_000003"
    for given in (run, root, link):  # resolved to the step folder, not left as "latest"
        assert resolve_checkpoint(given) == root / "step_000003"
    moved = tmp_path / "elsewhere"
    shutil.move(run, moved)  # relative: the link survives moving the run
    assert (moved / "checkpoints" / "latest" / "weights.bin").read_bytes() == b"w3"
    assert resolve_checkpoint(moved) == moved / "checkpoints" / "step_000003"


def test_an_old_pointer_file_still_resolves_and_is_replaced_by_a_link(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    manager = CheckpointManager(root)
    _save(manager, 1)
    _save(manager, 2)
    (root / "latest").unlink()
    (root / "latest").write_text(json.dumps({"checkpoint": "step_000001", "step": 1}))
    assert manager.latest() == root / "step_000001"
    assert resolve_checkpoint(tmp_path / "run") == root / "step_000001"
    assert resolve_checkpoint(root / "latest") == root / "step_000001"
    _save(manager, 3)
    assert (root / "latest").is_symlink() and os.readlink(root / "latest") == "step_000003"
    (root / "latest").unlink()
    (root / "latest").write_text("not json")
    with pytest.raises(CheckpointError, match="damaged pointer .*latest"):
        manager.latest()


def test_pruning_never_removes_what_latest_names(tmp_path):
    root = tmp_path / "checkpoints"
    manager = CheckpointManager(root, keep=1)
    _save(manager, 5)
    _save(manager, 3)  # e.g. a run resumed from an older checkpoint: latest is step 3
    assert os.readlink(root / "latest") == "step_000003"
    verify_checkpoint(manager.latest())
    assert sorted(p.name for p in root.glob("step_*")) == ["step_000003", "step_000005"]


def test_a_leftover_temporary_link_is_replaced(tmp_path):
    root = tmp_path / "checkpoints"
    manager = CheckpointManager(root)
    _save(manager, 1)
    os.symlink("step_000009", root / "latest.tmp")  # a save killed between link and rename
    assert manager.latest() == root / "step_000001"
    _save(manager, 2)
    assert os.readlink(root / "latest") == "step_000002"
    assert not (root / "latest.tmp").is_symlink()


def test_without_symlinks_latest_is_the_pointer_file(tmp_path, monkeypatch):
    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks are not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    root = tmp_path / "checkpoints"
    manager = CheckpointManager(root)
    _save(manager, 1)
    _save(manager, 2)
    assert not (root / "latest").is_symlink()
    assert json.loads((root / "latest").read_text()) == {"checkpoint": "step_000002", "step": 2}
    assert manager.latest() == root / "step_000002"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000001", "step_000002"]


def test_a_copy_that_followed_the_link_is_read_but_not_written_over(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    _save(CheckpointManager(root), 1)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "run", copy)  # symlinks=False: latest becomes a real folder
    latest = copy / "checkpoints" / "latest"
    assert latest.is_dir() and not latest.is_symlink()
    assert resolve_checkpoint(copy) == latest
    verify_checkpoint(resolve_checkpoint(copy))
    with pytest.raises(CheckpointError, match="latest is a folder, not a link.*move it away"):
        _save(CheckpointManager(copy / "checkpoints"), 2)
    assert not (copy / "checkpoints" / "step_000002").exists()
