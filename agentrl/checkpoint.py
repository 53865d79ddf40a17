"""Atomic, verifiable checkpoint directories.

Layout of one checkpoint (``<run_dir>/checkpoints/step_000010/``)::

    manifest.json    format version, library version, step, resolved config, sha256 of every file
    policy/          safetensors weights (or LoRA adapter) + tokenizer
    algorithm/       state.pt: optimisers, critics, RNG states (torch.load(weights_only=True))
    replay/          rows.jsonl (replay buffers, never pickles)
    curriculum.json, rng.pt, counters.json

A checkpoint is written to ``step_XXXXXX.tmp/``, fsynced, renamed, and only then is
``latest`` replaced (atomically), so an interrupted save never damages ``latest``.

``latest`` is a relative symlink to the newest checkpoint (``latest -> step_000010``), so
``ls checkpoints/latest/`` and tools that take a folder path open it directly. It is
replaced by creating a new link next to it and renaming it over the old one. Where the
filesystem has no symlinks, ``latest`` is the JSON pointer file of earlier versions
(``{"checkpoint": "step_000010", "step": 10}``); both forms are read, as is a ``latest``
folder (a copy that dereferenced the link, e.g. ``cp -rL``).

Loading verifies the manifest and every checksum and refuses a damaged checkpoint with a
message naming the problem. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import agentrl

if TYPE_CHECKING:
    from agentrl.config import TrainConfig

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LATEST = "latest"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, partial or damaged."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary file and ``os.replace``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CheckpointManager:
    """Writes checkpoints under ``root`` and keeps the last ``keep``.

    Args:
        root: the folder holding ``step_*`` directories and ``latest``.
        keep: how many complete checkpoints to keep (the one ``latest`` names is never
            removed, even when it is not among the newest ``keep``).
    """

    def __init__(self, root: str | Path, keep: int = 3):
        self.root = Path(root)
        self.keep = keep

    def save(self, step: int, write: Callable[[Path], None], meta: dict[str, Any]) -> Path:
        """Create ``step_{step}``: ``write(tmp_dir)`` fills it, then manifest, rename, ``latest``."""
        self.root.mkdir(parents=True, exist_ok=True)
        link = self.root / LATEST
        if link.is_dir() and not link.is_symlink():
            raise CheckpointError(
                f"{link} is a folder, not a link to a checkpoint (a copy that followed the link?); "
                "move it away so that a new checkpoint can become the latest"
            )
        name = f"step_{step:06d}"
        final = self.root / name
        tmp = self.root / f"{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            write(tmp)
            files = sorted(p for p in tmp.rglob("*") if p.is_file())
            manifest = {
                "format_version": FORMAT_VERSION,
                "library_version": agentrl.__version__,
                "step": step,
                **meta,
                "files": {str(p.relative_to(tmp)): _sha256(p) for p in files},
            }
            write_json_atomic(tmp / MANIFEST, manifest)
            _fsync_dir(tmp)
        except OSError as e:  # a full disk, a vanished mount: keep what was there
            shutil.rmtree(tmp, ignore_errors=True)
            previous = self._latest_or_none()
            raise CheckpointError(
                f"could not write checkpoint {final}: {e}; nothing was replaced, the latest "
                f"checkpoint is still {previous}"
            ) from e
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(self.root)
        self._point_latest(name, step)
        self._prune()
        return final

    def _point_latest(self, name: str, step: int) -> None:
        """Make ``latest`` a relative symlink to ``name``: a new link is created next to it
        and renamed over it, so ``latest`` is always the old or the new one. Without symlink
        support, the JSON pointer file (written the same way)."""
        link = self.root / LATEST
        tmp = self.root / f"{LATEST}.tmp"
        if tmp.is_symlink() or tmp.exists():  # left over by a save killed at this point
            tmp.unlink()
        try:
            os.symlink(name, tmp, target_is_directory=True)
        except OSError:  # e.g. some network and Windows filesystems
            write_json_atomic(link, {"checkpoint": name, "step": step})
            return
        os.replace(tmp, link)
        _fsync_dir(self.root)

    def _prune(self) -> None:
        done = sorted(
            p for p in self.root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp")
        )
        target = self._latest_or_none()
        for old in done[: -self.keep]:
            if target is not None and old.name == target.name:
                continue  # never remove what latest names
            shutil.rmtree(old, ignore_errors=True)
        for tmp in self.root.glob("step_*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)

    def _latest_or_none(self) -> Path | None:
        try:
            return self.latest()
        except CheckpointError:
            return None

    def latest(self) -> Path | None:
        """The checkpoint ``latest`` names (``root/step_XXXXXX``, the link's target), or
        ``None`` when there is none.

        Reads the symlink, the JSON pointer file of earlier versions, and a ``latest``
        folder holding a checkpoint (returned as is). A target that no longer exists is
        still returned: :func:`verify_checkpoint` then says what is missing.
        """
        pointer = self.root / LATEST
        if pointer.is_symlink():
            return self.root / os.readlink(pointer)
        if pointer.is_dir():
            return pointer
        if not pointer.exists():
            return None
        try:
            name = json.loads(pointer.read_text())["checkpoint"]
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"damaged pointer {pointer}: expected a symlink to a step_* folder or JSON "
                f'like {{"checkpoint": "step_000010"}} ({e})'
            ) from e
        return self.root / name

    def latest_valid(self) -> Path | None:
        """The newest checkpoint that passes :func:`verify_checkpoint` (``latest`` if it is
        intact), or ``None``. Damaged ones are left on disk untouched."""
        candidates = sorted(
            (p for p in self.root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp")),
            reverse=True,
        )
        for path in candidates:
            try:
                verify_checkpoint(path)
            except CheckpointError:
                continue
            return path
        return None


def resolve_checkpoint(path: str | Path, default_root: str | Path | None = None) -> Path:
    """Turn ``"latest"``, a run dir, a checkpoints dir, its ``latest`` (link or pointer file)
    or a checkpoint dir into a checkpoint dir (``latest`` resolved to the ``step_*`` it names)."""
    p = Path(path) if str(path) != "latest" else None
    if p is None:
        if default_root is None:
            raise CheckpointError("resume=latest needs run_dir to be set to the run to continue")
        p = Path(default_root)
    if p.name.startswith("step_") and p.is_dir():
        return p  # verify_checkpoint names what is wrong with it
    if p.name == LATEST and (p.is_symlink() or p.is_file()):
        found = CheckpointManager(p.parent).latest()
        if found is not None:
            return found
    for candidate in (p, p / "checkpoints"):
        if (candidate / MANIFEST).exists():
            return candidate
        if (candidate / LATEST).is_symlink() or (candidate / LATEST).exists():
            found = CheckpointManager(candidate).latest()
            if found is not None:
                return found
    raise CheckpointError(
        f"no checkpoint at {p}: expected a checkpoint folder with {MANIFEST}, or a run/checkpoints "
        f"folder with a '{LATEST}' pointer"
    )


def default_run_dir(cfg: TrainConfig) -> Path:
    """A new run's folder when ``run_dir`` is not set: ``runs/<env>-<algorithm>-<date-time>``."""
    env = cfg.env.id.split("/")[-1].split("-")[0].lower()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{env}-{cfg.algorithm['name']}-{stamp}"


def run_paths(cfg: TrainConfig, default_run_dir: Path) -> tuple[Path, Path | None, Path | None]:
    """``(run_dir, resume_from, init_from)`` of a run: the checkpoint ``resume`` names (its
    run's folder unless ``run_dir`` is set) or a new run's folder, which must not hold a run
    already (a new run never overwrites an old one's metrics or checkpoints); each named
    checkpoint verified."""
    from agentrl.config import ConfigError

    resume_from: Path | None = None
    if cfg.resume:
        resume_from = resolve_checkpoint(cfg.resume, cfg.run_dir)
        verify_checkpoint(resume_from)
        run_dir = Path(cfg.run_dir) if cfg.run_dir else resume_from.parent.parent
    else:
        run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir
        if (run_dir / "metrics.jsonl").exists() or (run_dir / "checkpoints" / LATEST).exists():
            raise ConfigError(
                f"run_dir={run_dir} already holds a run; continue it with resume=latest, or pick "
                "another run_dir (a new run never overwrites an old one's metrics or checkpoints)"
            )
    init_from: Path | None = None
    if cfg.init_from:
        init_from = resolve_checkpoint(cfg.init_from)
        verify_checkpoint(init_from)
    return run_dir, resume_from, init_from


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Check the manifest and every file's checksum; return the manifest."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise CheckpointError(
            f"{path} is not a complete checkpoint: {MANIFEST} is missing (interrupted save?)"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as e:
        raise CheckpointError(
            f"damaged checkpoint {path}: {MANIFEST} is not valid JSON ({e})"
        ) from e
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this agentrl ({agentrl.__version__}) reads {FORMAT_VERSION}"
        )
    for rel, digest in manifest.get("files", {}).items():
        f = path / rel
        if not f.exists():
            raise CheckpointError(f"damaged checkpoint {path}: file {rel} is missing")
        if _sha256(f) != digest:
            raise CheckpointError(f"damaged checkpoint {path}: checksum mismatch in {rel}")
    return manifest
