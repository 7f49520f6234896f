"""The data pipelines of `seqmodels.data`, run without a Task: a config section in, batches, artifacts and a
summary out, on tiny fixtures in the real formats."""

from __future__ import annotations

import torch

from conftest import write_ptb
from helpers.parallel_text import write_multi30k
from seqmodels.data.corpus import EOS, IGNORE
from seqmodels.data.language_model_data import LanguageModelData, TextWindow, prepare_language_model_data
from seqmodels.data.multi30k import EXTRA_TESTS
from seqmodels.data.parallel import read_lines
from seqmodels.data.subword import BOS_ID, EOS_ID
from seqmodels.data.text import PAD_ID
from seqmodels.data.translation_data import TranslationBatch, TranslationData, prepare_translation_data
from seqmodels.schema import validate


def lm_section(tmp_path, **keys) -> LanguageModelData:
    root = tmp_path / "data"
    write_ptb(root / "ptb", {"ptb.train.txt": 30, "ptb.valid.txt": 6, "ptb.test.txt": 6})
    node = {"root": str(root), "cache_dir": str(tmp_path / "cache"), "download": False, **keys}
    return validate(LanguageModelData, node, "data")


def test_a_word_corpus_becomes_windows_of_parallel_streams_that_predict_every_next_word(tmp_path):
    streams = prepare_language_model_data(lm_section(tmp_path, batch_size=3, bptt=4))
    words = (tmp_path / "data" / "ptb" / "ptb.train.txt").read_text().split("\n")[:-1]
    tokens = [token for line in words for token in [*line.split(), EOS]]
    vocabulary = streams.data.artifacts["vocabulary"]
    assert [vocabulary[i] for i in streams.train_ids] == tokens
    assert set(streams.data.artifacts) == {"level", "vocabulary", "vocab_size", "unknown", "start"}
    assert streams.data.artifacts["start"] == EOS and streams.data.artifacts["unknown"] == "<unk>"
    windows = list(streams.data.train)
    assert all(isinstance(w, TextWindow) and w.inputs.shape[0] == 3 and w.inputs.shape[1] <= 4 for w in windows)
    # row by row, the windows read the text in order and each target is the next token
    inputs = torch.cat([w.inputs for w in windows], dim=1).flatten()
    targets = torch.cat([w.targets for w in windows], dim=1).flatten()
    real = targets != IGNORE
    assert sum(w.num_targets for w in windows) == len(tokens) - 1 == int(real.sum())
    assert inputs[real].tolist() == streams.train_ids[:-1].tolist()
    assert targets[real].tolist() == streams.train_ids[1:].tolist()
    assert streams.data.summary["tokens train / val / test"].startswith(f"{len(tokens):,} / ")


def test_a_backward_corpus_reads_each_split_from_its_end(tmp_path):
    one_stream = {"batch_size": 1, "eval_batch_size": 1, "bptt": 1000}
    forward = prepare_language_model_data(lm_section(tmp_path, **one_stream))
    backward = prepare_language_model_data(lm_section(tmp_path, **one_stream, reverse=True))
    assert backward.data.artifacts == forward.data.artifacts  # one vocabulary, from the one cache entry
    (first,) = list(forward.data.val)
    (last,) = list(backward.data.val)
    assert last.inputs[0].tolist() == first.targets[0].flip(0).tolist()
    assert "direction" in backward.data.summary and "direction" not in forward.data.summary


def test_a_parallel_corpus_becomes_bucketed_pairs_with_their_untouched_references(tmp_path):
    root = write_multi30k(tmp_path / "data")
    node = {"root": str(root), "cache_dir": str(tmp_path / "cache"), "vocab_size": 40, "batch_size": 16}
    data = prepare_translation_data(validate(TranslationData, node, "data"), seed=0)
    assert set(data.extra_tests) == set(EXTRA_TESTS)
    assert data.artifacts["source"] == "de" and data.artifacts["target"] == "en"
    references = read_lines(root / "multi30k" / "val.en.gz")
    seen = []
    for batch in data.val:
        assert isinstance(batch, TranslationBatch)
        for row, length in enumerate(batch.source_lengths.tolist()):
            assert (batch.source[row, length:] == PAD_ID).all() and (batch.source[row, :length] != PAD_ID).all()
        # <s> y1 .. yn in, y1 .. yn </s> out, the same pieces shifted by one
        real = batch.target_out != PAD_ID
        for row, n in enumerate(real.sum(1).tolist()):
            pieces = batch.target_out[row, : n - 1].tolist()
            assert batch.target_in[row, :n].tolist() == [BOS_ID, *pieces] and batch.target_out[row, n - 1] == EOS_ID
            assert (batch.target_in[row, n:] == PAD_ID).all() and (batch.target_out[row, n:] == PAD_ID).all()
        assert batch.target_positions.tolist() == real.flatten().nonzero().squeeze(1).tolist()
        seen += batch.references
    assert sorted(seen) == sorted(references)
    # the training order is the seed's: the same seed, the same batches
    again = prepare_translation_data(validate(TranslationData, node, "data"), seed=0)
    other = prepare_translation_data(validate(TranslationData, node, "data"), seed=1)
    first = [b.source.tolist() for b in data.train]
    assert first == [b.source.tolist() for b in again.train] != [b.source.tolist() for b in other.train]
