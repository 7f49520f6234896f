"""Atomic file writes: a crash mid-write leaves the previous file (or none), never half a file.

The one writer of the package's output files (checkpoints, metrics.json, predictions, sidecars): the
content goes to a temporary file beside the destination, which is renamed over it once complete. The
temporary file gets the mode any new file gets under the user's umask (mkstemp's own is 0600), so a
run's results are as readable as its logs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from seqmodels.errors import ConfigError


def umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc), else set and restored."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


class AtomicFile:
    """A file written whole or not at all. Creating one creates its temporary file beside `path` (so
    an unwritable place fails before any work); `commit` writes and renames it into place; `discard`
    removes it. A symlink at `path` keeps pointing where it did: the file it names is replaced."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(os.path.realpath(path))  # the rename replaces the file a symlink names, not the link
        if self.path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.temporary: Path | None = Path(name)
        try:
            os.fchmod(descriptor, 0o666 & ~umask())
        finally:
            os.close(descriptor)

    def commit(self, write: Callable[[IO[bytes]], object]) -> None:
        """Fill the file with `write(handle)` and put it in place; on any failure the destination is as it was."""
        assert self.temporary is not None, "committed twice"
        try:
            with open(self.temporary, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(self.temporary, self.path)
            self.temporary = None
        finally:
            self.discard()

    def discard(self) -> None:
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)
            self.temporary = None


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    AtomicFile(path).commit(write)


def save_torch(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def save_json(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda handle: handle.write((json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()))


def copy_file(source: Path, path: Path) -> None:
    with open(source, "rb") as original:
        _atomic_write(path, lambda handle: shutil.copyfileobj(original, handle))


class AtomicOutput:
    """A command's output file (`option` names the flag that gave it, for errors), written atomically;
    `-` is standard output. Opening it fails at once where the file cannot be written."""

    def __init__(self, target: str, option: str = "--output") -> None:
        self.target, self.option = target, option
        self.file: AtomicFile | None = None
        if target == "-":
            return
        try:
            self.file = AtomicFile(target)
        except OSError as error:
            raise ConfigError(f"cannot write {option} {target} ({error.strerror}); nothing was written") from None

    def commit(self, text: str) -> None:
        if self.file is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            self.file.commit(lambda handle: handle.write(text.encode("utf-8")))
        except OSError as error:
            raise ConfigError(
                f"cannot write {self.option} {self.target} ({error.strerror}); nothing was written"
            ) from None

    def discard(self) -> None:
        if self.file is not None:
            self.file.discard()
