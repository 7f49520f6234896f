"""WikiText-2 (Merity et al. 2016), the tokenized v1 release: 33k words with `<unk>`.

`data.root/wikitext-2` holds `wiki.train.tokens`, `wiki.valid.tokens` and
`wiki.test.tokens`. When they are missing, they are taken from `wikitext-2-v1.zip` in that
folder, or from the published archive, downloaded and checked against its MD5; only the
three files are extracted, and a downloaded archive is removed once they are in place.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from seqmodels.data.download import download
from seqmodels.errors import DataError

FOLDER = "wikitext-2"
FILES = {"train": "wiki.train.tokens", "val": "wiki.valid.tokens", "test": "wiki.test.tokens"}
ARCHIVE = "wikitext-2-v1.zip"
URL = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"
MD5 = "542ccefacc6c27f945fb54453812b3cd"


def locate(root: Path, allow_download: bool) -> dict[str, Path]:
    """{'train', 'val', 'test'} -> the files under `root/wikitext-2`, extracting or downloading
    them if they are missing."""
    folder = Path(root) / FOLDER
    paths = {split: folder / name for split, name in FILES.items()}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if not missing:
        return paths
    archive = folder / ARCHIVE
    hint = (
        f"put {', '.join(FILES.values())} (or {ARCHIVE}, from {URL}) in {folder}, or point data.root "
        f"(or SEQMODELS_DATA_DIR) at a folder that holds {FOLDER}/"
    )
    downloaded = False
    if not archive.is_file():
        if not allow_download:
            raise DataError(f"WikiText-2 not found in {folder} (missing: {', '.join(missing)}): {hint}")
        download(URL, archive, md5=MD5, manual_hint=hint)
        downloaded = True
    extract(archive, folder, missing)
    if downloaded:
        archive.unlink()
    return paths


def extract(archive: Path, folder: Path, names: list[str]) -> None:
    """Write the archive members called `names` (in any subfolder) into `folder`, each
    through a temporary file so an interrupted extraction leaves no half file."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = {Path(member).name: member for member in zipped.namelist()}
            absent = [name for name in names if name not in members]
            if absent:
                raise DataError(f"{archive} does not hold {', '.join(absent)}; it should be {ARCHIVE} from {URL}")
            for name in names:
                partial = folder / f"{name}.part"
                partial.write_bytes(zipped.read(members[name]))
                os.replace(partial, folder / name)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(
            f"{archive} is corrupt or unreadable ({error}); delete it and run again to download "
            f"it, or put the extracted {', '.join(FILES.values())} in {folder}"
        ) from None
