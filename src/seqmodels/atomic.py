"""Atomic file writes: a crash mid-write leaves the previous file (or none), never half a file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    # The temporary file lives in the destination folder so the final rename is atomic.
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def save_json(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda handle: handle.write((json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()))


def copy_file(source: Path, path: Path) -> None:
    with open(source, "rb") as original:
        _atomic_write(path, lambda handle: shutil.copyfileobj(original, handle))
