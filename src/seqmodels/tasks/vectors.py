"""`model.pretrained_vectors` for any task: find the file, check its dimension before reading it,
read it (converted once and cached by `data/vectors.py`), and match it to the task's vocabulary with the
coverage line.

A task with a word vocabulary calls `read_vectors` in `prepare`, extends its training vocabulary
with `unseen_word_candidates` (`data.pretrained.extend`; a language model does not: its output layer
predicts its corpus vocabulary), keys its data cache on `vocabulary_sources` too, and hands
`pretrained_rows` to its model config's `build`, whose `start_embedding` does the rest; the number
of pretrained words beyond the vocabulary travels in the artifacts as `frozen_words`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from pathlib import Path

import torch

from seqmodels.data.config import DataConfig
from seqmodels.data.pretrained import Coverage, match, unseen_candidates
from seqmodels.data.vectors import WordVectors, load_vectors, probe
from seqmodels.errors import ConfigError, DataError
from seqmodels.models.embedding import PretrainedRows
from seqmodels.models.encoder import EncoderConfig

log = logging.getLogger("seqmodels")


def vector_file(setting: str, data_root: str) -> Path:
    """The file `model.pretrained_vectors` names: an absolute path, or a relative one found in the working
    directory or else in data.root."""
    path = Path(setting).expanduser()
    candidates = [path] if path.is_absolute() else [path, Path(data_root) / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    where = " or ".join(str(c.absolute()) for c in candidates)
    raise DataError(
        f"model.pretrained_vectors={setting}: no such file ({where}); e.g. "
        f"`python scripts/download_data.py glove` fetches GloVe 6B into data.root/glove/"
    )


def read_vectors(model: EncoderConfig, data: DataConfig) -> WordVectors | None:
    """The vectors of `model.pretrained_vectors` (None without), refused before the long first read
    when their dimension is not `model.embedding_dim`."""
    if not model.pretrained_vectors:
        return None
    path = vector_file(model.pretrained_vectors, data.root)
    dim = probe(path).dim
    if dim != model.embedding_dim:
        raise ConfigError(
            f"model.pretrained_vectors={model.pretrained_vectors} holds {dim}-dimensional vectors but "
            f"model.embedding_dim={model.embedding_dim}: set model.embedding_dim={dim} (or use a file of "
            f"{model.embedding_dim}-dimensional vectors)"
        )
    return load_vectors(path, Path(data.cache_dir))


def unseen_word_candidates(
    vectors: WordVectors | None, model: EncoderConfig, *, lowercase: bool, token_pattern: str | None = None
) -> list[str]:
    """The pretrained words the model may keep (frozen) for words training never saw, before the
    vocabulary's own words are set aside (`data.pretrained.extend`): `model.unseen_word_vectors` of the
    file's first words, those the task's text can produce. Empty without vectors or with 0."""
    if vectors is None or model.unseen_word_vectors == 0:
        return []
    return unseen_candidates(vectors, model.unseen_word_vectors, lowercase=lowercase, token_pattern=token_pattern)


def vocabulary_sources(
    vectors: WordVectors | None, candidates: Sequence[str], model: EncoderConfig
) -> tuple[list[Path], dict[str, object]]:
    """What a task's cached vocabulary depends on besides its data: the vector file and how many of its
    words are kept, when pretrained words extend the vocabulary; nothing otherwise."""
    if vectors is None or not candidates:
        return [], {}
    return [vectors.path], {"unseen_word_vectors": model.unseen_word_vectors}


def pretrained_rows(
    vectors: WordVectors,
    words: Sequence[str],
    *,
    frozen: int,
    train_ids: torch.Tensor,
    specials: Collection[str] = (),
    lowercased_data: bool = False,
) -> tuple[PretrainedRows, Coverage]:
    """The rows the model's embedding starts from, after logging the coverage line (a warning when
    it is low)."""
    rows, found, coverage = match(
        vectors, words, frozen=frozen, train_ids=train_ids, specials=specials, lowercased_data=lowercased_data
    )
    log.info("word vectors: %s", coverage.line())
    warning = coverage.warning()
    if warning:
        log.warning("word vectors: %s", warning)
    return PretrainedRows(rows, found, vectors.scale), coverage
