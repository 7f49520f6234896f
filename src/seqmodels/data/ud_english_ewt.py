"""Universal Dependencies English Web Treebank (UD_English-EWT, Silveira et al. 2014), release r2.16.

`data.root/ud_english_ewt` holds `en_ewt-ud-train.conllu`, `en_ewt-ud-dev.conllu` and
`en_ewt-ud-test.conllu` (CoNLL-U, `seqmodels.data.conllu`); missing files are downloaded from the
release tag of the treebank's repository, each checked against its sha256. Licence: CC BY-SA 4.0.
"""

from __future__ import annotations

from pathlib import Path

from seqmodels.data.download import locate_files

FOLDER = "ud_english_ewt"
FILES = {"train": "en_ewt-ud-train.conllu", "val": "en_ewt-ud-dev.conllu", "test": "en_ewt-ud-test.conllu"}
URL = "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.16/"
SHA256 = {
    "en_ewt-ud-train.conllu": "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
    "en_ewt-ud-dev.conllu": "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
    "en_ewt-ud-test.conllu": "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
}


def locate(root: Path, allow_download: bool) -> dict[str, Path]:
    """{'train', 'val', 'test'} -> the files under `root/ud_english_ewt`, downloading missing ones if allowed."""
    checksums = {name: ("sha256", digest) for name, digest in SHA256.items()}
    return locate_files(
        root,
        title="UD English EWT",
        folder=FOLDER,
        files=FILES,
        url=URL,
        checksums=checksums,
        allow_download=allow_download,
    )
