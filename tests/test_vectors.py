"""Pretrained word vectors: every file format, every bad input, the conversion cache, coverage, the
embedding (frozen words beyond the vocabulary, <pad>, freezing) and tiny NER and sentiment runs."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import struct
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, run_script, train
from seqmodels.config import compose_config
from seqmodels.data import glove
from seqmodels.data import vectors as vector_files
from seqmodels.data.pretrained import extend, match, unseen_candidates
from seqmodels.data.text import PAD, UNK, UNK_ID, WHITESPACE_TOKEN, encode, extend_vocabulary, train_word_tokenizer
from seqmodels.data.vectors import GLOVE, WORD2VEC_BINARY, WORD2VEC_TEXT, load_vectors, probe
from seqmodels.errors import ConfigError, DataError
from seqmodels.models import ClassifierConfig, LanguageModelConfig
from seqmodels.models.embedding import PretrainedRows, WordEmbedding
from seqmodels.schema import validate
from seqmodels.tasks import get_task

WORDS = ["the", "paris", "harry", "met", "ron", "kyrgyzstan", "ministry", "é"]
VECTORS = np.arange(len(WORDS) * 3, dtype=np.float32).reshape(len(WORDS), 3) / 8 - 1


def text_lines(words=WORDS, vectors=VECTORS, trailing: str = "") -> list[str]:
    return [f"{w} {' '.join(f'{v:g}' for v in row)}{trailing}" for w, row in zip(words, vectors)]


def write(path, data: bytes, gz: bool = False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def glove_file(path, words=WORDS, vectors=VECTORS, gz=False):
    return write(path, ("\n".join(text_lines(words, vectors)) + "\n").encode(), gz)


def word2vec_text(path, words=WORDS, vectors=VECTORS, gz=False, count=None):
    lines = [f"{len(words) if count is None else count} {vectors.shape[1]}", *text_lines(words, vectors, " ")]
    return write(path, ("\n".join(lines) + "\n").encode(), gz)


def word2vec_binary(path, words=WORDS, vectors=VECTORS, gz=False, count=None):
    body = b"".join(w.encode() + b" " + struct.pack(f"<{len(row)}f", *row) + b"\n" for w, row in zip(words, vectors))
    return write(path, f"{len(words) if count is None else count} {vectors.shape[1]}\n".encode() + body, gz)


# -- formats ------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "writer,fmt", [(glove_file, GLOVE), (word2vec_text, WORD2VEC_TEXT), (word2vec_binary, WORD2VEC_BINARY)]
)
def test_every_format_reads_the_same_vectors(tmp_path, writer, fmt, gz):
    path = writer(tmp_path / ("vectors.gz" if gz else "vectors"), gz=gz)
    assert probe(path).format == fmt and probe(path).dim == 3
    loaded = load_vectors(path, tmp_path / "cache")
    assert loaded.format == fmt and loaded.words == WORDS and loaded.dim == 3
    assert torch.equal(loaded.vectors, torch.from_numpy(VECTORS))
    assert loaded.index["é"] == 7 and loaded.cased_share == 0.0
    assert loaded.scale == pytest.approx(float(VECTORS.std()), rel=1e-5)


def test_a_header_is_never_read_as_a_word_and_crlf_lines_are_fine(tmp_path):
    path = write(tmp_path / "v.vec", ("2 3\r\n" + "\r\n".join(text_lines(WORDS[:2], VECTORS[:2])) + "\r\n").encode())
    loaded = load_vectors(path, tmp_path / "cache")
    assert loaded.words == ["the", "paris"] and loaded.format == WORD2VEC_TEXT


def test_the_second_load_comes_from_the_cache_and_a_changed_file_is_read_again(tmp_path, monkeypatch):
    path = glove_file(tmp_path / "v.txt")
    load_vectors(path, tmp_path / "cache")
    monkeypatch.setattr(vector_files, "_convert", lambda *a: pytest.fail("converted twice"))
    started = time.perf_counter()
    assert load_vectors(path, tmp_path / "cache").words == WORDS
    assert time.perf_counter() - started < 1.0
    monkeypatch.undo()
    glove_file(path, WORDS[:3], VECTORS[:3])  # another size: another cache entry
    assert load_vectors(path, tmp_path / "cache").words == WORDS[:3]


# -- bad input: one line each -------------------------------------------------------------------
BAD_FILES = {
    "missing": (None, "does not exist"),
    "empty": (b"", "is empty"),
    "empty gz": (gzip.compress(b""), "is empty"),
    "wrong count": (b"the 1 2 3\nparis 1 2\nharry 1 2 3\n", r"v:2: 2 values after the word 'paris', expected 3"),
    "not a number": (b"the 1 2 3\nparis 1 x 3\n", r"v:2: 'x' after the word 'paris' is not a number"),
    "mixed dimensions": (
        b"the 1 2 3\nparis 1 2 3 4\nharry 1 2 3 4\n",
        "mixed dimensions: the lines before line 2 hold 3 values, lines 2 and 3 hold 4",
    ),
    "not utf-8": (b"the 1 2 3\ncaf\xe9 1 2 3\n", r"v:2: not UTF-8 text \(byte 0xe9\)"),
    "header says more": (b"3 3\nthe 1 2 3\nparis 1 2 3\n", "header says 3 words but the file holds 2"),
    "header says fewer": (b"1 3\nthe 1 2 3\nparis 1 2 3\n", "header says 1 words but the file holds 2"),
    "no vectors": (b"hello world\n", "v:1: expected 'word v1 v2 ...'"),
    "header of nothing": (b"0 300\n", "holds no vectors"),
    "nan": (b"the 1 2 3\nparis nan 2 3\n", "the vector of 'paris' holds nan or inf values"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_vector_file_is_one_line(tmp_path, case):
    data, message = BAD_FILES[case]
    path = tmp_path / "v"
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(DataError, match=message) as error:
        load_vectors(path, tmp_path / "cache")
    assert "\n" not in str(error.value)
    cache = tmp_path / "cache"
    assert not cache.exists() or not list(cache.iterdir())  # nothing half-made is left behind


@pytest.mark.parametrize("layout", ["GloVe", "word2vec"])
def test_a_byte_order_mark_is_dropped_not_read_as_part_of_the_first_word(tmp_path, layout):
    path = glove_file(tmp_path / "v.txt") if layout == "GloVe" else word2vec_text(tmp_path / "v.txt")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert probe(path).dim == 3  # not 1: the header `8 3` is still a header
    loaded = load_vectors(path, tmp_path / "cache")
    assert loaded.words == WORDS and loaded.format == (GLOVE if layout == "GloVe" else WORD2VEC_TEXT)


def test_a_header_whose_dimension_is_not_the_rows_is_named_wrong_and_the_rows_are_read(tmp_path, caplog):
    path = word2vec_text(tmp_path / "v.txt")
    path.write_bytes(path.read_bytes().replace(b"8 3\n", b"8 100\n", 1))
    with caplog.at_level(logging.WARNING, logger="seqmodels"):
        layout = probe(path)
    assert layout.dim == 3 and layout.format == WORD2VEC_TEXT
    assert (
        f"{path}: the header says 100 values per word but its rows hold 3: the header is wrong (fix its second "
        f"number); reading 3-dimensional vectors" in caplog.text
    )
    loaded = load_vectors(path, tmp_path / "cache")
    assert loaded.words == WORDS and np.allclose(loaded.vectors.numpy(), VECTORS)


@pytest.mark.parametrize(
    "case,message",
    [
        ("fewer", "header says 3 words but the file ends after 2"),
        ("more", "header says 1 words but more data follows them"),
        ("latin-1", r"\(word 2\): not UTF-8 text"),
    ],
)
def test_a_bad_binary_file_is_one_line(tmp_path, case, message):
    words = ["the", "caf\xe9"] if case == "latin-1" else WORDS[:2]
    path = tmp_path / "v.bin"
    word2vec_binary(path, words, VECTORS[:2], count={"fewer": 3, "more": 1}.get(case))
    if case == "latin-1":
        path.write_bytes(path.read_bytes().replace("caf\xe9".encode(), "caf\xe9".encode("latin-1")))
    with pytest.raises(DataError, match=message):
        load_vectors(path, tmp_path / "cache")


def test_a_truncated_gzip_or_a_folder_is_one_line(tmp_path):
    data = glove_file(tmp_path / "v.gz", gz=True).read_bytes()
    (tmp_path / "v.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_vectors(tmp_path / "v.gz", tmp_path / "cache")
    with pytest.raises(DataError, match="is a folder"):
        load_vectors(tmp_path, tmp_path / "cache")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_one_line(tmp_path):
    path = glove_file(tmp_path / "v.txt")
    path.chmod(0)
    with pytest.raises(DataError, match="cannot read"):
        load_vectors(path, tmp_path / "cache")


def test_a_dimension_other_than_embedding_dim_names_both(tmp_path, small_conll):
    path = glove_file(tmp_path / "v.txt")
    task = get_task(ner_cfg(small_conll, tmp_path, path, "model.embedding_dim=7"))
    with pytest.raises(
        ConfigError,
        match=r"holds 3-dimensional vectors but model.embedding_dim=7: set "
        r"model.embedding_dim=3",
    ):
        task.prepare()


def test_a_missing_file_names_the_setting_and_where_it_looked(tmp_path, small_conll):
    with pytest.raises(
        DataError,
        match=r"model.pretrained_vectors=nowhere.txt: no such file \(.*nowhere.txt or "
        r".*data/nowhere.txt\)",
    ):
        get_task(ner_cfg(small_conll, tmp_path, "nowhere.txt")).prepare()


def test_freezing_without_vectors_and_frozen_tied_weights_are_refused():
    with pytest.raises(ConfigError, match="model.freeze_vectors=true needs model.pretrained_vectors"):
        validate(ClassifierConfig, {"freeze_vectors": True}, "model")
    with pytest.raises(ConfigError, match="would freeze the output layer"):
        validate(
            LanguageModelConfig,
            {
                "freeze_vectors": True,
                "pretrained_vectors": "v.txt",
                "tie_weights": True,
                "embedding_dim": 8,
                "hidden_size": 8,
            },
            "model",
        )


# -- coverage -----------------------------------------------------------------------------------
def test_coverage_counts_exact_lowercased_and_missing_words_and_training_tokens(tmp_path, caplog):
    loaded = load_vectors(glove_file(tmp_path / "v.txt"), tmp_path / "cache")
    words = [PAD, UNK, "the", "Paris", "Draco", "met", "kyrgyzstan"]  # the last one beyond the vocabulary
    train_ids = torch.tensor([2, 2, 2, 3, 4, 4, 5, 1])  # 8 tokens: the x3, Paris, Draco x2, met, <unk>
    rows, found, coverage = match(loaded, words, frozen=1, train_ids=train_ids, specials=(PAD, UNK))
    assert (coverage.words, coverage.exact, coverage.lowercased, coverage.missing) == (4, 2, 1, 1)
    assert coverage.tokens == pytest.approx(5 / 8)  # the, Paris, met
    assert found.tolist() == [False, False, True, True, False, True, True]
    assert torch.equal(rows[3], torch.from_numpy(VECTORS[1]))  # Paris <- paris
    assert coverage.frequent_missing[0] == "Draco"
    assert coverage.line().endswith(
        "of 4 vocabulary words 2 found exactly, 1 lowercased, 1 not found (25.0%, "
        "started at random); 62.5% of training tokens covered; 1 more pretrained "
        "words kept, frozen, for words unseen in training"
    )
    assert coverage.warning() is None
    _, _, low = match(
        loaded, [PAD, UNK, "Draco", "the"], frozen=0, train_ids=torch.tensor([2, 2, 2, 3]), specials=(PAD, UNK)
    )
    assert low.warning().startswith(
        "ONLY 25.0% OF TRAINING TOKENS HAVE A PRETRAINED VECTOR: likely vectors of another language"
    )
    assert "'Draco'" in low.warning()


def test_unseen_words_are_the_files_first_words_the_text_can_produce(tmp_path):
    loaded = load_vectors(
        glove_file(tmp_path / "v.txt", ["the", "Paris", "e-mail", "ron", ","], VECTORS[:5]), tmp_path / "cache"
    )
    assert unseen_candidates(loaded, 2, lowercase=False) == ["the", "Paris"]
    assert unseen_candidates(loaded, None, lowercase=True) == ["the", "e-mail", "ron", ","]
    assert unseen_candidates(loaded, None, lowercase=True, token_pattern=r"\w+|[^\w\s]+") == ["the", "ron", ","]
    assert extend([PAD, UNK, "the"], ["the", "ron", "ron", ","]) == ["ron", ","]


def test_a_tokenizer_extended_with_pretrained_words_finds_them_as_they_are_then_lowercased():
    tokenizer = train_word_tokenizer(["The film was great", "the film"], vocab_size=100, min_freq=1, lowercase=False)
    assert tokenizer.get_vocab_size() == 7
    extend_vocabulary(tokenizer, extend(list(tokenizer.get_vocab()), ["the", "paris", "e-mail", "film"]))
    assert [tokenizer.token_to_id(w) for w in ("paris", "e-mail")] == [7, 8]
    assert encode(tokenizer, ["Paris film"]) == [[UNK_ID, tokenizer.token_to_id("film")]]
    assert encode(tokenizer, ["Paris film"], lowercase_fallback=True) == [[7, tokenizer.token_to_id("film")]]
    assert encode(tokenizer, [""], lowercase_fallback=True) == [[UNK_ID]]
    assert not re.fullmatch(WHITESPACE_TOKEN, "e-mail")  # the pre-tokenizer splits it: never a whole token


# -- the embedding ------------------------------------------------------------------------------
def test_the_embedding_keeps_pad_zero_draws_missing_words_at_scale_and_freezes_beyond_the_vocabulary():
    torch.manual_seed(0)
    vectors = torch.randn(2006, 4)
    found = torch.ones(2006, dtype=torch.bool)
    found[2:2002] = False  # 2,000 words the file lacks
    embedding = WordEmbedding(2006, 4, padding_idx=0, frozen_words=3)
    embedding.load_pretrained(PretrainedRows(vectors, found, scale=0.25))
    assert embedding.weight[0].eq(0).all()
    assert embedding.weight[2:2002].std().item() == pytest.approx(0.25, rel=0.05)
    assert torch.equal(embedding.weight[2003 - 3 + 2], vectors[2002])
    assert torch.equal(embedding.frozen, vectors[2003:])
    assert "frozen" not in dict(embedding.named_parameters()) and "frozen" in embedding.state_dict()
    ids = torch.tensor([[0, 2005, 2002, 2003]])
    out = embedding(ids)
    assert torch.equal(out[0, 1], vectors[2005]) and torch.equal(out[0, 3], vectors[2003])
    out.sum().backward()
    assert embedding.weight.grad[2002].ne(0).all() and embedding.weight.grad[0].eq(0).all()


def test_freeze_vectors_keeps_the_embedding_through_a_training_step():
    config = validate(
        ClassifierConfig,
        {"embedding_dim": 3, "hidden_size": 4, "pretrained_vectors": "v.txt", "freeze_vectors": True},
        "model",
    )
    rows = PretrainedRows(torch.randn(6, 3), torch.ones(6, dtype=torch.bool), 1.0)
    model = config.build(6, 2, frozen_words=2, pretrained=rows)
    before = model.embedding.weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.tensor([[1, 2, 5]]), torch.tensor([3])).sum().backward()
    optimizer.step()
    assert torch.equal(model.embedding.weight, before) and not model.embedding.weight.requires_grad
    assert torch.equal(model.embedding.frozen, rows.vectors[4:])
    assert next(model.encoder.parameters()).requires_grad


# -- tasks --------------------------------------------------------------------------------------
def conll_lines(rows):
    return "\n".join(rows)


@pytest.fixture()
def small_conll(tmp_path):
    folder = tmp_path / "data" / "conll2003"
    folder.mkdir(parents=True)
    train_rows = [
        "-DOCSTART- -X- -X- O",
        "",
        "Harry NNP I-NP I-PER",
        "met VBD I-VP O",
        "Ron NNP I-NP I-PER",
        "",
        "Harry NNP I-NP I-PER",
        "left VBD I-VP O",
        "Paris NNP I-NP I-LOC",
        ". . O O",
    ]
    (folder / "eng.train").write_text(conll_lines(train_rows))
    (folder / "eng.testa").write_text(conll_lines(["Draco NNP I-NP I-PER", "met VBD I-VP O", "Harry NNP I-NP I-PER"]))
    (folder / "eng.testb").write_text(
        conll_lines(["The DT I-NP O", "Ministry NNP I-NP I-ORG", "Kyrgyzstan NNP I-NP I-LOC"])
    )
    return tmp_path / "data"


def ner_cfg(root, tmp_path, vectors, *overrides):
    return compose_config(
        [
            "task=conll2003",
            f"data.root={root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.batch_size=8",
            "model.embedding_dim=3",
            "model.hidden_size=5",
            f"model.pretrained_vectors={vectors}",
            *overrides,
        ]
    )


def test_a_test_word_training_never_saw_gets_its_vector_without_peeking(tmp_path, small_conll, caplog):
    vectors = glove_file(small_conll / "glove.txt")
    task = get_task(ner_cfg(small_conll, tmp_path, "glove.txt", "data.min_freq=1"))  # found in data.root
    with caplog.at_level(logging.INFO, logger="seqmodels"):
        data = task.prepare()
    words, frozen = data.artifacts["words"], data.artifacts["frozen_words"]
    training = words[: len(words) - frozen]
    assert training == [PAD, UNK, "Harry", "met", "Ron", "left", "Paris", "."]  # the training words only
    assert words[len(training) :] == ["the", "paris", "harry", "ron", "kyrgyzstan", "ministry", "é"]
    assert "of 6 vocabulary words 1 found exactly, 3 lowercased" in caplog.text
    (test,) = list(data.test)  # The Ministry Kyrgyzstan: never seen in training, all in the file (lowercased)
    assert test.tokens.tolist() == [[words.index("the"), words.index("ministry"), words.index("kyrgyzstan")]]
    model = task.build_model(data.artifacts)
    assert torch.equal(model.embedding(test.tokens)[0, 2], torch.from_numpy(VECTORS[5]))
    assert torch.equal(model.embedding.weight[words.index("Paris")], torch.from_numpy(VECTORS[1]))
    (val,) = list(data.val)  # Draco is in neither
    assert val.tokens[0, 0] == UNK_ID
    assert vectors.exists()


def test_zero_unseen_word_vectors_keeps_the_plain_vocabulary(tmp_path, small_conll):
    glove_file(tmp_path / "v.txt")
    data = get_task(ner_cfg(small_conll, tmp_path, tmp_path / "v.txt", "model.unseen_word_vectors=0")).prepare()
    assert "frozen_words" not in data.artifacts and "kyrgyzstan" not in data.artifacts["words"]


def test_a_language_model_keeps_its_corpus_vocabulary(tmp_path, data_root):
    path = glove_file(tmp_path / "v.txt", ["the", "cat", "dog", "zebra"], VECTORS[:4])
    task = get_task(
        compose_config(
            [
                "task=ptb",
                f"data.root={data_root}",
                f"data.cache_dir={tmp_path / 'cache'}",
                "model.embedding_dim=3",
                "model.hidden_size=4",
                f"model.pretrained_vectors={path}",
            ]
        )
    )
    data = task.prepare()
    model = task.build_model(data.artifacts)
    vocabulary = data.artifacts["vocabulary"]
    assert "zebra" not in vocabulary and model.embedding.num_words == len(vocabulary) == data.artifacts["vocab_size"]
    assert torch.equal(model.embedding.weight[vocabulary.index("cat")], torch.from_numpy(VECTORS[1]))
    with pytest.raises(ConfigError, match="holds word vectors, but data.dataset=chars models characters"):
        get_task(compose_config(["task=chars", f"data.path={path}", f"model.pretrained_vectors={path}"]))


def test_glove_extracts_only_the_chosen_dimension_gzipped(tmp_path):
    import zipfile

    folder = tmp_path / "glove"
    folder.mkdir()
    with zipfile.ZipFile(folder / glove.ARCHIVE, "w") as bundle:
        bundle.writestr("glove.6B.50d.txt", "the 1 2\n")
        bundle.writestr("glove.6B.100d.txt", "the 1 2 3\n")
    path = glove.locate(tmp_path, allow_download=False, dim=100)
    assert path.name == "glove.6B.100d.txt.gz" and gzip.decompress(path.read_bytes()) == b"the 1 2 3\n"
    assert not (folder / "glove.6B.50d.txt.gz").exists()
    with pytest.raises(DataError, match="GloVe not found in"):
        glove.locate(tmp_path / "elsewhere", allow_download=False)


# -- end to end ---------------------------------------------------------------------------------
def vectors_for_the_fixtures(path):
    """Vectors for most words of conftest's tiny datasets (lowercased, as GloVe 6B)."""
    from conftest import ENTITIES, FILLER, NEGATIVE, POSITIVE, TEMPLATES

    words = {w.lower() for group in ENTITIES.values() for entity in group for w in entity}
    words |= {w.lower() for template in TEMPLATES for w in template if w not in ENTITIES}
    words |= {*FILLER, *POSITIVE, *NEGATIVE, "hermione", "london", "unseen"}
    words = sorted(words)
    rng = np.random.default_rng(0)
    return glove_file(path, words, rng.normal(0, 0.5, (len(words), 8)).astype(np.float32), gz=True)


VECTOR_RUN = ["model.embedding_dim=8", "model.freeze_vectors=false"]


def test_ner_trains_with_vectors_and_predicts_without_the_file(tmp_path, env):
    path = vectors_for_the_fixtures(tmp_path / "vectors.txt.gz")
    train(
        tmp_path / "run",
        [
            "task=conll2003",
            "model.crf=true",
            "model.char_dim=4",
            "model.char_filters=3",
            f"model.pretrained_vectors={path}",
            *VECTOR_RUN,
        ],
        env,
    )
    log = (tmp_path / "run" / "train.log").read_text()
    assert "word vectors: vectors.txt.gz (GloVe text," in log and "found exactly" in log
    state = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert state["artifacts"]["frozen_words"] > 0 and "embedding.frozen" in state["model"]
    path.unlink()  # the run directory alone predicts
    answer = json.loads(
        run_script(
            [str(ROOT / "scripts" / "predict.py"), str(tmp_path / "run"), "Hermione met Harry in London ."], env
        ).stdout
    )
    assert answer["tokens"] == ["Hermione", "met", "Harry", "in", "London", "."]


def test_sentiment_trains_with_frozen_vectors(tmp_path, env):
    path = vectors_for_the_fixtures(tmp_path / "vectors.txt.gz")
    train(
        tmp_path / "run",
        ["task=imdb", f"model.pretrained_vectors={path}", "model.embedding_dim=8", "model.freeze_vectors=true"],
        env,
    )
    log = (tmp_path / "run" / "train.log").read_text()
    assert "of training tokens covered" in log and "not trained" in log
    state = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert state["artifacts"]["frozen_words"] > 0
    answer = json.loads(
        run_script(
            [str(ROOT / "scripts" / "predict.py"), str(tmp_path / "run"), "An unseen, wonderful film."], env
        ).stdout
    )
    assert answer["label"] in ("positive", "negative")
