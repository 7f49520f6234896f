"""GloVe 6B word vectors (Pennington et al. 2014; 400k lowercased words, Wikipedia 2014 + Gigaword 5).

Stanford publishes the four dimensions (50, 100, 200, 300) in one 862 MB zip. `locate` downloads it
into `data.root/glove/` (MD5-checked, with a progress bar) and extracts only the dimension asked
for, gzipped as it goes (`glove.6B.50d.txt.gz`, the file `model.pretrained_vectors` names in the
presets); the zip is kept, so another dimension needs no second download (delete it to save space).
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import zipfile
from pathlib import Path

from seqmodels.data.download import download
from seqmodels.errors import DataError

log = logging.getLogger("seqmodels")

URL = "https://nlp.stanford.edu/data/glove.6B.zip"
MD5 = "056ea991adb4740ac6bf1b6d9b50408b"  # of glove.6B.zip, as pinned by several independent projects
ARCHIVE = "glove.6B.zip"
DIMENSIONS = (50, 100, 200, 300)


def file_name(dim: int) -> str:
    return f"glove.6B.{dim}d.txt.gz"


def locate(root: Path, allow_download: bool, dim: int = 50) -> Path:
    """`root/glove/glove.6B.{dim}d.txt.gz`, extracted from the zip (downloaded first if allowed)."""
    if dim not in DIMENSIONS:
        raise DataError(f"GloVe 6B comes in {', '.join(map(str, DIMENSIONS))} dimensions, not {dim}")
    folder = Path(root) / "glove"
    target = folder / file_name(dim)
    plain = folder / f"glove.6B.{dim}d.txt"
    for candidate in (target, plain):
        if candidate.exists():
            return candidate
    archive = folder / ARCHIVE
    hint = (
        f"download {URL} by hand and put it (or its glove.6B.{dim}d.txt) in {folder}, or point data.root "
        f"(or SEQMODELS_DATA_DIR) at a folder that holds glove/"
    )
    if not archive.exists():
        if not allow_download:
            raise DataError(f"GloVe not found in {folder}: {hint}")
        download(URL, archive, md5=MD5, manual_hint=hint)
    return extract(archive, dim, target)


def extract(archive: Path, dim: int, target: Path) -> Path:
    """Only `glove.6B.{dim}d.txt` of the zip, gzipped into `target` (atomically: never half a file)."""
    member = f"glove.6B.{dim}d.txt"
    log.info("extracting %s from %s into %s", member, archive, target)
    partial = target.with_name(target.name + ".part")
    try:
        with (
            zipfile.ZipFile(archive) as bundle,
            bundle.open(member) as source,
            gzip.GzipFile(partial, mode="wb", compresslevel=6, mtime=0) as packed,
        ):
            shutil.copyfileobj(source, packed, 1 << 20)
    except KeyError:
        partial.unlink(missing_ok=True)
        raise DataError(f"{archive} holds no {member}; is it Stanford's glove.6B.zip?") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        partial.unlink(missing_ok=True)
        raise DataError(f"{archive} is not a readable zip ({error}); delete it and download again") from None
    os.replace(partial, target)  # only a whole file takes the name
    return target
