"""Prepared data is computed once and cached, keyed on the source files and the settings.

The key hashes each source file's path, size and modification time (cheap, and any edit
or replacement changes it) together with every preprocessing setting and a format
version, so a changed setting or file builds a new entry and never reuses a stale one.
Entries hold only tensors, strings and numbers: they load with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from seqmodels.atomic import save_torch

log = logging.getLogger("seqmodels")

FORMAT_VERSION = 1


def fingerprint(paths: Iterable[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of every file in `paths`, walking directories."""
    found: list[tuple[str, int, int]] = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            stat = file.stat()
            found.append((str(file.resolve()), stat.st_size, stat.st_mtime_ns))
    return found


def cache_key(sources: Iterable[Path], settings: dict[str, Any]) -> str:
    blob = json.dumps(
        {"version": FORMAT_VERSION, "files": fingerprint(sources), "settings": settings}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached(cache_dir: Path, name: str, key: str, build: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """Load entry `name-key` from `cache_dir`, or build and store it. Returns (entry, was_cached)."""
    path = Path(cache_dir) / f"{name}-{key}.pt"
    if path.exists():
        try:
            entry = torch.load(path, weights_only=True)
            log.info("%s data loaded from cache %s", name, path)
            return entry, True
        except Exception:  # a damaged entry is rebuilt, not trusted
            path.unlink(missing_ok=True)
    entry = build()
    save_torch(entry, path)
    log.info("%s data built into cache %s", name, path)
    return entry, False
