"""Fetch a dataset archive from its canonical URL, verify its checksum, never leave half a file."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from seqmodels.errors import DataError

CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str, destination: Path, *, md5: str | None = None, sha256: str | None = None, manual_hint: str = ""
) -> Path:
    """Download `url` to `destination` with a progress bar and a checksum check.

    The bytes go to `destination.part` first and are renamed only once the checksum
    matches, so an interrupted or corrupt download never looks like a finished one.
    """
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=f"downloading {destination.name}",
                mininterval=1.0,
                disable=None,
            ) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        partial.unlink(missing_ok=True)
        raise DataError(f"could not download {url} ({getattr(error, 'reason', error)}); {manual_hint}") from None
    if expected:
        actual = file_digest(partial, algorithm)
        if actual != expected:
            partial.unlink(missing_ok=True)
            raise DataError(
                f"{url} downloaded with {algorithm} {actual}, expected {expected}: "
                f"the file is corrupt or not the published one; {manual_hint}"
            )
    os.replace(partial, destination)
    return destination


def locate_files(
    root: Path,
    *,
    title: str,
    folder: str,
    files: dict[str, str],
    url: str,
    checksums: dict[str, tuple[str, str]],
    allow_download: bool,
) -> dict[str, Path]:
    """{split: path} of a dataset stored as one file a split under `root/folder` (`files`: split -> name),
    each missing one downloaded from `url` + its name when allowed. `checksums`: name -> (algorithm, hex
    digest), the algorithm md5 or sha256. `title` names the dataset in errors."""
    where = Path(root) / folder
    paths = {split: where / name for split, name in files.items()}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if not missing:
        return paths
    hint = (
        f"put {', '.join(files.values())} (from {url}) in {where}, or point data.root "
        f"(or SEQMODELS_DATA_DIR) at a folder that holds {folder}/"
    )
    if not allow_download:
        raise DataError(f"{title} not found in {where} (missing: {', '.join(missing)}): {hint}")
    for name in missing:
        algorithm, digest = checksums[name]
        download(url + name, where / name, **{algorithm: digest}, manual_hint=hint)
    return paths
