"""Fetch the datasets into data.root before training (training also fetches a missing one).

    python scripts/download_data.py                 # all but glove, into $SEQMODELS_DATA_DIR or data/
    python scripts/download_data.py ptb --root /data/seqmodels
    python scripts/download_data.py glove --glove-dim 100   # word vectors: only when named (862 MB zip)

Each archive comes from its canonical URL and is checked against its published MD5 (Multi30k: the
sha256 of each file at a pinned commit of the multi30k/dataset repository, en, de and fr; UD English
EWT: the sha256 of each file of the r2.16 release tag; SST: the sha256 of Stanford's
trainDevTestTrees_PTB.zip). CoNLL-2003 has no public download: the script says which files to put where.
GloVe 6B comes as one zip of four dimensions: only the one asked for is extracted, as
data.root/glove/glove.6B.<dim>d.txt.gz.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from seqmodels.data import conll, glove, imdb, multi30k, ptb, sst, ud_english_ewt, wikitext2
from seqmodels.errors import SeqmodelsError

DOWNLOADABLE = {"imdb": imdb, "sst": sst, "ptb": ptb, "wikitext2": wikitext2, "ud_english_ewt": ud_english_ewt}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    known = [*DOWNLOADABLE, "multi30k", "conll2003", "glove"]
    parser.add_argument("datasets", nargs="*", help=f"any of {', '.join(known)} (default: all but glove)")
    parser.add_argument(
        "--glove-dim",
        type=int,
        default=50,
        choices=glove.DIMENSIONS,
        help="the GloVe 6B dimension to extract (default 50)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("SEQMODELS_DATA_DIR", Path.cwd() / "data")),
        help="data.root (default: $SEQMODELS_DATA_DIR, else data/ in the checkout)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.datasets) - set(known))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    failed = False
    for name in args.datasets or [name for name in known if name != "glove"]:
        try:
            if name == "glove":
                found = glove.locate(args.root, True, args.glove_dim)
            elif name == "multi30k":
                found = multi30k.fetch_all(args.root)[0].parent
            else:
                found = conll.locate(args.root) if name == "conll2003" else DOWNLOADABLE[name].locate(args.root, True)
            print(f"{name}: ready ({found if isinstance(found, Path) else ', '.join(str(p) for p in found.values())})")
        except SeqmodelsError as error:
            print(f"{name}: {error}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
