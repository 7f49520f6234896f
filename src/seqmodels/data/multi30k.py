"""Multi30k task 1 (Elliott et al. 2016): image descriptions in English, German and French.

Files as published in the multi30k/dataset repository, `data/task1/raw/<split>.<lang>.gz`, kept
under `data.root/multi30k/` (an uncompressed `<split>.<lang>` is read too). A missing file is
downloaded from that repository, pinned to one commit, and checked against its sha256.
"""

from __future__ import annotations

from pathlib import Path

from seqmodels.data.download import download
from seqmodels.errors import DataError

LANGUAGES = ("en", "de", "fr")
# the task's splits -> the published file names; test is the 2016 Flickr test set everyone reports
SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}
EXTRA_TESTS = ("test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")
COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
URL = f"https://raw.githubusercontent.com/multi30k/dataset/{COMMIT}/data/task1/raw/{{name}}"
SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_flickr.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
    "test_2017_mscoco.en.gz": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
    "test_2017_mscoco.de.gz": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
    "test_2017_mscoco.fr.gz": "754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0",
    "test_2018_flickr.en.gz": "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
    "test_2018_flickr.de.gz": "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
    "test_2018_flickr.fr.gz": "fb2b83fcceb937a4f7e3e93c1c51c22aba92f1e342391e6b5ba392b16a920501",
}


def locate(root: Path, source: str, target: str, allow_download: bool) -> dict[str, tuple[Path, Path]]:
    """{split: (source file, target file)} for train, val, test and the extra test sets, each file
    found under `root/multi30k` or downloaded there."""
    folder = Path(root) / "multi30k"
    return {
        split: (_file(folder, name, source, allow_download), _file(folder, name, target, allow_download))
        for split, name in {**SPLITS, **{name: name for name in EXTRA_TESTS}}.items()
    }


def fetch_all(root: Path) -> list[Path]:
    """Every published file of task 1 (each split, each language) under `root/multi30k`, downloaded
    where missing: what `scripts/download_data.py multi30k` fetches."""
    folder = Path(root) / "multi30k"
    splits = [*SPLITS.values(), *EXTRA_TESTS]
    return [_file(folder, split, language, True) for split in splits for language in LANGUAGES]


def _file(folder: Path, split: str, language: str, allow_download: bool) -> Path:
    name = f"{split}.{language}.gz"
    for candidate in (folder / name, folder / f"{split}.{language}"):
        if candidate.is_file():
            return candidate
    url = URL.format(name=name)
    hint = (
        f"put {name} (from {url}) in {folder}, or point data.root (or SEQMODELS_DATA_DIR) at a folder that "
        f"holds multi30k/"
    )
    if not allow_download:
        raise DataError(f"Multi30k file {name} not found in {folder}: {hint}")
    return download(url, folder / name, sha256=SHA256[name], manual_hint=hint)
