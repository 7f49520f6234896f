"""`data.*` keys every task reads; each task's data section extends `DataConfig` with its own."""

from __future__ import annotations

from dataclasses import dataclass

from seqmodels.schema import Section, setting


@dataclass
class DataConfig(Section):
    root: str = setting(
        "${oc.env:SEQMODELS_DATA_DIR,${cwd:}/data}",
        "the folder that holds imdb/, conll2003/, wikitext-2/, ptb/, multi30k/, glove/ (see docs/data.md); "
        "default $SEQMODELS_DATA_DIR, else data/ in the current directory; never written to "
        "except to download a missing dataset into it",
    )
    cache_dir: str = setting(
        "${oc.env:SEQMODELS_CACHE_DIR,${user_cache:}}",
        "prepared (tokenized) data, keyed on the files and settings; default "
        "$SEQMODELS_CACHE_DIR, else $XDG_CACHE_HOME/seqmodels or ~/.cache/seqmodels; safe to "
        "delete",
    )
    download: bool = setting(True, "fetch a missing dataset from its canonical URL")
    batch_size: int = setting(64, "examples (or parallel text streams) per training batch", minimum=1)
