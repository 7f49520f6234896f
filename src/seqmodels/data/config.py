"""`data.*` keys every task reads; each task's data section extends `DataConfig` with its own."""

from __future__ import annotations

from dataclasses import dataclass

from seqmodels.data.encoding import ERROR_MODES, TextEncoding
from seqmodels.schema import Section, setting


@dataclass
class DataConfig(Section):
    root: str = setting(
        "${oc.env:SEQMODELS_DATA_DIR,${cwd:}/data}",
        "the folder that holds imdb/, conll2003/, wikitext-2/, ptb/, multi30k/, glove/ (see docs/data.md); "
        "default $SEQMODELS_DATA_DIR, else data/ in the current directory; never written to "
        "except to download a missing dataset into it",
        execution=True,
    )
    cache_dir: str = setting(
        "${oc.env:SEQMODELS_CACHE_DIR,${user_cache:}}",
        "prepared (tokenized) data, keyed on the files and settings; default "
        "$SEQMODELS_CACHE_DIR, else $XDG_CACHE_HOME/seqmodels or ~/.cache/seqmodels; safe to "
        "delete",
        execution=True,
    )
    download: bool = setting(True, "fetch a missing dataset from its canonical URL", execution=True)
    batch_size: int = setting(64, "examples (or parallel text streams) per training batch", minimum=1)
    encoding: str = setting(
        "utf-8",
        "the encoding of the dataset's text files (e.g. latin-1 for CoNLL-2002); a byte that does not "
        "decode is refused with its file, line and byte",
    )
    encoding_errors: str = setting(
        "strict",
        "strict: refuse a byte that does not decode | replace: read it as U+FFFD and count it in a warning",
        choices=ERROR_MODES,
    )

    def text_encoding(self) -> TextEncoding:
        """How this run's readers turn bytes into text (`seqmodels.data.encoding`)."""
        return TextEncoding(self.encoding, self.encoding_errors)


@dataclass
class FilesConfig(DataConfig):
    """`data.*` of the tasks that read the user's own files (`task=classification`, `task=tagging`): one file
    per split. Relative paths are read from the directory train.py runs in."""

    train: str | None = setting(None, "the training file (required unless a preset names a dataset)")
    val: str | None = setting(None, "the validation file; null: hold out data.val_fraction of the training file")
    test: str | None = setting(None, "the test file; null: the run reports validation only")
    val_fraction: float = setting(
        0.1,
        "without data.val: the share of the training examples held out for validation (data.split_seed)",
        minimum=0.0,
        maximum=1.0,
        low_open=True,
    )
    split_seed: int = setting(1234, "seeds the validation split, which does not move with `seed`", minimum=0)
