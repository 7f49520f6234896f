"""Named-entity recognition (sequence tagging with span tags, `task=conll2003`): the CoNLL reader and IOB
conversion, conlleval-equal scoring, the CRF against brute force, padding invariance, data preparation, and
train/predict end to end."""

from __future__ import annotations

import itertools
import json
import math
import os

import pytest
import torch

from conftest import ROOT, run_script, train
from helpers.decoding import best_valid_path
from seqmodels.config import compose_config
from seqmodels.data import conll
from seqmodels.data.encoding import UTF8, TextEncoding
from seqmodels.data.tag_schemes import Span, entity_spans, forbidden_moves, to_iob2
from seqmodels.data.tagging import Columns, read_splits
from seqmodels.data.text import UNK_ID
from seqmodels.errors import ConfigError, DataError
from seqmodels.models import LinearChainCRF, SequenceTagger, TaggerConfig
from seqmodels.models.tagger import CharCNN, SequenceAttention
from seqmodels.schema import validate
from seqmodels.tasks import get_task
from seqmodels.tasks.tagging_metrics import entity_scores

CELLS = ["rnn", "gru", "lstm"]
VARIANTS = list(itertools.product(CELLS, [False, True], [1, 2]))


def conll_lines(rows: list[str]) -> str:
    return "\n".join(rows)


# -- reading ------------------------------------------------------------------------------------
def read_conll2003(path, encoding=UTF8):
    """One CoNLL-2003 file's sentences as training reads them (IOB1 read as IOB2)."""
    return read_splits(
        {"train": path, "val": path}, Columns(layout=conll.LAYOUT), encoding, val_fraction=0.1, seed=0
    ).sentences["train"]


DOCUMENTS = [
    "-DOCSTART- -X- -X- O",
    "",
    "Harry NNP I-NP I-PER",
    "Potter NNP I-NP I-PER",
    "Ron NNP I-NP B-PER",  # two people, IOB1
    "met VBD I-VP O",
    "the DT I-NP O",
    "European NNP I-NP I-ORG",
    "Commission NNP I-NP I-ORG",
    "London NNP I-NP I-LOC",  # type change
    ". . O O",
    "",
    "",  # two blank lines: still one sentence break
    "-DOCSTART- -X- -X- O",
    "",
    "Paris NNP I-NP I-LOC",
    "1996-08-30 CD I-NP O",
    "-DOCSTART- -X- -X- O",  # a document marker also ends a sentence
    "Reuters\tNNP\tI-NP\tI-ORG",  # tab-separated, and no newline at the end of the file
]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_reader_converts_iob1_to_iob2_and_numbers_documents(tmp_path, newline):
    path = tmp_path / "eng.train"
    path.write_bytes(newline.join(DOCUMENTS).encode())
    sentences = read_conll2003(path)
    assert [s.words for s in sentences] == [
        ["Harry", "Potter", "Ron", "met", "the", "European", "Commission", "London", "."],
        ["Paris", "1996-08-30"],
        ["Reuters"],
    ]
    assert [s.tags for s in sentences] == [
        ["B-PER", "I-PER", "B-PER", "O", "O", "B-ORG", "I-ORG", "B-LOC", "O"],
        ["B-LOC", "O"],
        ["B-ORG"],
    ]
    assert [s.document for s in sentences] == [0, 1, 2]  # each -DOCSTART- opens the next document


def test_latin1_files_are_read_with_data_encoding_and_refused_without(tmp_path):
    path = tmp_path / "eng.testa"
    path.write_bytes("Müller NNP I-NP I-PER\nsaid VBD I-VP O\n".encode("latin-1"))
    assert read_conll2003(path, TextEncoding("latin-1"))[0].words == ["Müller", "said"]
    with pytest.raises(DataError, match=rf"^{path}:1: byte 2 \(0xfc\) is not utf-8; name the file's encoding"):
        read_conll2003(path)


@pytest.mark.parametrize("line", ["Harry NNP I-NP PER", "Harry NNP I-NP I-", "Harry"])
def test_a_malformed_line_is_named_with_its_number(tmp_path, line):
    path = tmp_path / "eng.train"
    path.write_text(conll_lines(["-DOCSTART- -X- -X- O", "", "Ron NNP I-NP I-PER", line]))
    with pytest.raises(DataError, match="eng.train:4: expected 'word POS chunk NER'"):
        read_conll2003(path)


@pytest.mark.parametrize(
    "lengths,documents,max_tokens,starts",
    [
        ([3, 4, 2, 5, 1], [0, 0, 0, 1, 1], 7, [0, 2, 3]),  # fill up to 7 tokens, never across documents
        ([3, 4, 2, 5, 1], [0, 0, 0, 1, 1], 0, [0, 1, 2, 3, 4]),  # 0: every sentence alone
        ([3, 4, 2, 5, 1], [0, 0, 0, 1, 1], 1000, [0, 3]),  # whole documents
        ([10, 2, 2], [0, 0, 0], 5, [0, 1]),  # a sentence longer than the limit is a run of its own, whole
    ],
)
def test_document_context_runs(lengths, documents, max_tokens, starts):
    assert conll.context_starts(lengths, documents, max_tokens) == starts


@pytest.mark.parametrize(
    "tags,iob2",
    [
        (["I-PER", "I-PER", "B-PER"], ["B-PER", "I-PER", "B-PER"]),
        (["I-ORG", "I-LOC"], ["B-ORG", "B-LOC"]),
        (["O", "I-MISC", "I-MISC", "O", "I-MISC"], ["O", "B-MISC", "I-MISC", "O", "B-MISC"]),
        (["B-PER", "I-LOC", "I-LOC"], ["B-PER", "B-LOC", "I-LOC"]),
        (["B-LOC", "I-LOC", "B-LOC", "O"], ["B-LOC", "I-LOC", "B-LOC", "O"]),  # IOB2 stays as it is
        ([], []),
    ],
)
def test_iob1_to_iob2(tags, iob2):
    assert to_iob2(tags) == iob2
    assert to_iob2(iob2) == iob2
    assert entity_spans(tags) == entity_spans(iob2)


def test_entity_spans_follow_conlleval():
    assert entity_spans(["I-PER", "I-PER", "B-PER", "O", "I-LOC"]) == [
        Span("PER", 0, 2),
        Span("PER", 2, 3),
        Span("LOC", 4, 5),
    ]
    assert entity_spans(["B-ORG", "I-ORG", "I-LOC"]) == [Span("ORG", 0, 2), Span("LOC", 2, 3)]
    assert entity_spans(["O", "I-LOC", "B-LOC", "I-LOC"]) == [Span("LOC", 1, 2), Span("LOC", 2, 4)]


def test_missing_conll_files_are_named(tmp_path):
    (tmp_path / "conll2003").mkdir()
    (tmp_path / "conll2003" / "eng.train").write_text("Ron NNP I-NP I-PER\n")
    with pytest.raises(DataError) as error:
        conll.locate(tmp_path)
    message = str(error.value)
    assert message.startswith(f"CoNLL-2003 not found: put eng.train, eng.testa, eng.testb in {tmp_path / 'conll2003'}")
    assert "missing: eng.testa, eng.testb" in message and "data.root" in message and "SEQMODELS_DATA_DIR" in message
    assert "\n" not in message


def test_raw_text_is_split_like_conll():
    words = [m.group() for m in conll.split_words("Yesterday, Harry Potter met Hermione Granger in London.")]
    assert words == ["Yesterday", ",", "Harry", "Potter", "met", "Hermione", "Granger", "in", "London", "."]
    words = [m.group() for m in conll.split_words("The U.S. grew 3.5% on 1996-08-30; O'Neill's (AP)")]
    assert words == ["The", "U.S.", "grew", "3.5", "%", "on", "1996-08-30", ";", "O'Neill's", "(", "AP", ")"]


# -- scoring ------------------------------------------------------------------------------------
# Gold and predicted IOB1 tags, one sentence per row. conlleval on this file (w GOLD PRED per line,
# blank lines between sentences) counts 10 gold, 9 found, 6 correct; per type (gold/found/correct)
# LOC 2/2/1, MISC 1/1/1, ORG 2/2/1, PER 5/4/3.
GOLD = [
    ["I-PER", "I-PER", "B-PER", "O", "I-LOC"],  # two adjacent people...
    ["I-ORG", "I-LOC", "O", "I-MISC", "I-MISC"],  # a type change starts an entity
    ["O", "B-PER", "I-PER", "O", "I-ORG"],
    ["I-PER"],  # entities never run across sentences
    ["I-PER", "I-PER"],
]
PREDICTED = [
    ["I-PER", "I-PER", "I-PER", "O", "I-LOC"],  # ...predicted as one: wrong, LOC right
    ["I-ORG", "I-ORG", "O", "B-MISC", "I-MISC"],  # ORG too long: wrong; B-MISC I-MISC = MISC
    ["O", "I-PER", "I-PER", "I-LOC", "I-ORG"],  # I-PER after O starts PER (right), LOC spurious
    ["I-PER"],
    ["B-PER", "I-PER"],
]  # IOB2 spelling of the same entity: right


def test_scores_equal_conlleval_on_a_hand_counted_example():
    scores = entity_scores(GOLD, PREDICTED)
    assert scores["precision"] == pytest.approx(6 / 9)  # conlleval: precision 66.67%
    assert scores["recall"] == pytest.approx(6 / 10)  # recall 60.00%
    assert scores["f1"] == pytest.approx(12 / 19)  # FB1 63.16
    assert scores["f1_PER"] == pytest.approx(2 / 3)  # P 3/4, R 3/5: 66.67
    assert scores["f1_LOC"] == scores["f1_ORG"] == pytest.approx(0.5)
    assert scores["f1_MISC"] == 1.0
    # the same entities in IOB2 score the same
    assert entity_scores([to_iob2(g) for g in GOLD], [to_iob2(p) for p in PREDICTED]) == scores


def test_scores_without_entities_are_zero_not_undefined():
    scores = entity_scores([["B-PER", "O"]], [["O", "O"]], types=["PER", "LOC"])
    assert scores == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "f1_LOC": 0.0, "f1_PER": 0.0}
    assert entity_scores([["O"]], [["O"]])["f1"] == 0.0
    with pytest.raises(ValueError):
        entity_scores([["O", "O"]], [["O"]])


# -- the CRF ------------------------------------------------------------------------------------
def brute_force(crf: LinearChainCRF, emissions: torch.Tensor, length: int) -> tuple[list[int], torch.Tensor]:
    """(best sequence, log Z) of one sentence by scoring every tag sequence."""
    scores = {}
    for tags in itertools.product(range(crf.num_tags), repeat=length):
        score = crf.start[tags[0]] + crf.end[tags[-1]] + sum(emissions[t, tags[t]] for t in range(length))
        score = score + sum(crf.transitions[tags[t - 1], tags[t]] for t in range(1, length))
        scores[tags] = score
    best = max(scores, key=lambda tags: scores[tags])
    return list(best), torch.logsumexp(torch.stack(list(scores.values())), 0)


def test_crf_viterbi_and_partition_equal_brute_force():
    torch.manual_seed(0)
    crf = LinearChainCRF(3)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_()  # far from uniform, so the transitions matter
    lengths = torch.tensor([4, 1, 3])
    emissions = torch.randn(3, 4, 3) * 2
    mask = torch.arange(4) < lengths.unsqueeze(1)
    paths = crf.viterbi(emissions, mask)
    log_z = crf.log_partition(emissions, mask)
    tags = torch.randint(0, 3, (3, 4))
    nll = crf.nll(emissions, tags, mask)
    for row, length in enumerate(lengths.tolist()):
        best, expected_log_z = brute_force(crf, emissions[row], length)
        assert paths[row, :length].tolist() == best
        assert paths[row, length:].eq(0).all()
        assert log_z[row].item() == pytest.approx(expected_log_z.item(), abs=1e-5)
        gold = tags[row, :length].tolist()
        score = crf.start[gold[0]] + crf.end[gold[-1]] + sum(emissions[row, t, gold[t]] for t in range(length))
        score = score + sum(crf.transitions[gold[t - 1], gold[t]] for t in range(1, length))
        assert nll[row].item() == pytest.approx((expected_log_z - score).item(), abs=1e-5)
    assert (nll > 0).all()  # a probability below 1


TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_iob2_forbids_inside_tags_that_continue_no_entity_of_their_type():
    transitions, start, end = forbidden_moves(TAGS)
    forbidden = {(TAGS[i], TAGS[j]) for i in range(5) for j in range(5) if transitions[i][j]}
    assert forbidden == {
        ("O", "I-PER"),
        ("O", "I-LOC"),
        ("B-LOC", "I-PER"),
        ("I-LOC", "I-PER"),
        ("B-PER", "I-LOC"),
        ("I-PER", "I-LOC"),
    }
    assert [TAGS[i] for i in range(5) if start[i]] == ["I-PER", "I-LOC"]
    assert not any(end)  # an IOB2 sentence may end on any tag


def is_valid_iob2(tags: list[str]) -> bool:
    return all(
        not tag.startswith("I-") or (i > 0 and tags[i - 1] in (f"B-{tag[2:]}", tag)) for i, tag in enumerate(tags)
    )


@pytest.mark.parametrize("crf", [False, True])
def test_valid_tags_decoding_is_the_best_valid_sequence_by_brute_force(crf):
    torch.manual_seed(3)
    model = make_tagger(crf=crf, forbidden=forbidden_moves(TAGS)).eval()
    free = make_tagger(crf=crf).eval()
    free.load_state_dict(model.state_dict())  # the forbidden transitions are not weights
    if crf:
        with torch.no_grad():
            for parameter in model.crf.parameters():
                parameter.normal_()
    lengths = torch.tensor([5, 1, 4])
    emissions = torch.randn(3, 5, 5) * 3  # strong, independent per-token scores: invalid argmaxes abound
    paths, free_paths = model.decode(emissions, lengths), free.decode(emissions, lengths)
    invalid_without = 0
    for row, length in enumerate(lengths.tolist()):
        best = best_valid_path(model, emissions, row, length, 5, lambda t: is_valid_iob2([TAGS[i] for i in t]))
        assert paths[row, :length].tolist() == best
        assert paths[row, length:].eq(0).all()
        invalid_without += not is_valid_iob2([TAGS[i] for i in free_paths[row, :length]])
    assert crf or invalid_without > 0  # the example would catch decoding that ignores the constraints


def test_crf_learns_a_transition_that_emissions_cannot_show():
    # Emissions are uninformative; the only signal is that tag 1 always follows tag 0.
    torch.manual_seed(0)
    crf = LinearChainCRF(3)
    optimizer = torch.optim.Adam(crf.parameters(), lr=0.1)
    tags = torch.tensor([[0, 1, 2, 0, 1], [2, 0, 1, 2, 2]])
    mask = torch.ones_like(tags, dtype=torch.bool)
    for _ in range(100):
        optimizer.zero_grad()
        crf.nll(torch.zeros(2, 5, 3), tags, mask).sum().backward()
        optimizer.step()
    assert crf.transitions[0].argmax().item() == 1


# -- the tagger ---------------------------------------------------------------------------------
def make_tagger(
    cell="lstm",
    bidirectional=False,
    layers=1,
    crf=False,
    char_dim=0,
    shape_dim=0,
    forbidden=None,
    unk_id=1,
    singletons_from=None,
    **keys,
) -> SequenceTagger:
    """A tiny tagger; `keys`: more model.* keys. Given `forbidden` moves, it decodes valid tags."""
    config = TaggerConfig(
        cell=cell,
        embedding_dim=6,
        hidden_size=5,
        num_layers=layers,
        bidirectional=bidirectional,
        dropout=0.2,
        crf=crf,
        char_dim=char_dim,
        char_filters=4,
        shape_dim=shape_dim,
        valid_tags=forbidden is not None,
        **keys,
    )
    return SequenceTagger(
        config,
        40,
        5,
        num_chars=30,
        num_shapes=len(conll.SHAPES),
        unk_id=unk_id,
        singletons_from=singletons_from,
        forbidden=forbidden,
    )


def random_chars(lengths: list[int], width: int, longest: int) -> torch.Tensor:
    """(len(lengths), width) character ids: each word 1..longest characters, then 0 padding."""
    chars = torch.zeros(len(lengths), width, dtype=torch.long)
    for row in range(len(lengths)):
        n = int(torch.randint(1, longest + 1, ()))
        chars[row, :n] = torch.randint(2, 30, (n,))
    return chars


@pytest.mark.parametrize(
    "crf,char_dim,shape_dim,valid_tags,attention_dim",
    [(False, 0, 0, False, 0), (True, 0, 0, False, 0), (False, 3, 2, True, 4), (True, 3, 2, True, 4)],
)
@pytest.mark.parametrize("cell,bidirectional,layers", VARIANTS)
def test_a_sentences_emissions_and_tags_do_not_depend_on_its_batch(
    cell, bidirectional, layers, crf, char_dim, shape_dim, valid_tags, attention_dim
):
    torch.manual_seed(0)
    model = make_tagger(
        cell,
        bidirectional,
        layers,
        crf,
        char_dim,
        shape_dim,
        word_dropout=0.5,
        attention_dim=attention_dim,
        forbidden=forbidden_moves(TAGS) if valid_tags else None,
    ).eval()
    sentence = torch.randint(2, 40, (5,))
    sentence_chars = random_chars([0] * 5, 6, 6)
    sentence_shapes = torch.randint(1, len(conll.SHAPES), (5,))
    alone = model(sentence.unsqueeze(0), torch.tensor([5]), sentence_chars.unsqueeze(0), sentence_shapes.unsqueeze(0))
    # batched with longer sentences and longer words, the padding filled with junk
    lengths = torch.tensor([9, 5, 7])
    tokens = torch.randint(2, 40, (3, 9))
    tokens[1, :5] = sentence
    chars = torch.stack([random_chars([0] * 9, 12, 12) for _ in range(3)])
    chars[1] = 0
    chars[1, :5, :6] = sentence_chars
    shapes = torch.randint(0, len(conll.SHAPES), (3, 9))
    shapes[1, :5] = sentence_shapes
    together = model(tokens, lengths, chars, shapes)
    assert torch.allclose(alone[0], together[1, :5], atol=1e-5)
    assert model.decode(alone, torch.tensor([5]))[0].tolist() == model.decode(together, lengths)[1, :5].tolist()
    if crf:
        tags = torch.randint(0, 5, (3, 9))
        mask = torch.arange(9) < lengths.unsqueeze(1)
        nll_alone = model.crf.nll(alone, tags[1:2, :5], mask[1:2, :5])
        assert torch.allclose(nll_alone, model.crf.nll(together, tags, mask)[1:2], atol=1e-4)


@pytest.mark.parametrize("crf", [False, True])
def test_loss_is_per_real_token_and_ignores_padding(crf):
    torch.manual_seed(0)
    model = make_tagger(crf=crf).eval()
    lengths = torch.tensor([4, 2])
    emissions = torch.randn(2, 4, 5)
    tags = torch.randint(0, 5, (2, 4))
    loss = model.loss(emissions, tags, lengths)
    tags[1, 2:] = torch.tensor([4, 3])  # other tags where there are no tokens
    assert torch.equal(model.loss(emissions, tags, lengths), loss)
    if not crf:  # the mean cross-entropy over the 6 real tokens, not over the 8 cells
        real = torch.cat([emissions[0], emissions[1, :2]]), torch.cat([tags[0], tags[1, :2]])
        assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(*real).item(), abs=1e-6)
    assert model.decode(emissions, lengths)[1, 2:].eq(0).all()


def test_attention_summarises_the_real_tokens_of_the_sequence():
    torch.manual_seed(0)
    attention = SequenceAttention(size=3, dim=2)
    outputs, mask = torch.randn(2, 4, 3), torch.tensor([[True] * 4, [True, True, False, False]])
    with torch.no_grad():  # equal scores everywhere: the summary is the mean of the real positions
        attention.query.weight.zero_()
        attention.query.bias.zero_()
    summary = attention(outputs, mask)
    assert torch.allclose(summary[0], outputs[0].mean(0).expand(4, 3), atol=1e-6)
    assert torch.allclose(summary[1], outputs[1, :2].mean(0).expand(4, 3), atol=1e-6)
    # a forward-only tagger's first tag sees the last word only through attention
    tokens = torch.randint(2, 40, (1, 6))
    changed = tokens.clone()
    changed[0, -1] = 1 if tokens[0, -1] != 1 else 2
    for attention_dim, reaches in [(0, False), (4, True)]:
        model = make_tagger(attention_dim=attention_dim).eval()
        first = [model(t, torch.tensor([6]))[0, 0] for t in (tokens, changed)]
        assert (not torch.allclose(*first)) == reaches


def test_char_cnn_ignores_word_padding_and_zeroes_padding_words():
    torch.manual_seed(0)
    cnn = CharCNN(num_chars=10, char_dim=3, num_filters=4)
    word = torch.tensor([[[5, 6, 7]]])
    padded = torch.tensor([[[5, 6, 7, 0, 0, 0], [0, 0, 0, 0, 0, 0]]])
    assert torch.allclose(cnn(word)[0, 0], cnn(padded)[0, 0], atol=1e-6)
    assert cnn(padded)[0, 1].eq(0).all()


def test_word_dropout_turns_only_real_training_words_into_unk():
    torch.manual_seed(0)
    model = make_tagger(word_dropout=0.5, unk_id=UNK_ID)
    seen = []
    model.embedding.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].clone()))
    tokens = torch.randint(2, 40, (64, 20))
    tokens[:, 15:] = 0
    model(tokens, torch.full((64,), 15))
    dropped = seen[-1] != tokens
    assert seen[-1][dropped].eq(UNK_ID).all() and not dropped[:, 15:].any()
    assert 0.4 < dropped[:, :15].float().mean() < 0.6
    model.eval()
    model(tokens, torch.full((64,), 15))
    assert torch.equal(seen[-1], tokens)  # never when evaluating


def test_singleton_dropout_turns_only_rare_words_into_unk():
    torch.manual_seed(0)
    model = make_tagger(singleton_dropout=0.5, singletons_from=30, unk_id=UNK_ID)
    seen = []
    model.embedding.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].clone()))
    tokens = torch.randint(2, 40, (64, 20))
    tokens[:, 15:] = 0
    model(tokens, torch.full((64,), 15))
    dropped, rare = seen[-1] != tokens, tokens >= 30
    assert seen[-1][dropped].eq(UNK_ID).all() and not dropped[~rare].any()  # frequent words and padding stay
    assert 0.4 < dropped[rare].float().mean() < 0.6
    model.eval()
    model(tokens, torch.full((64,), 15))
    assert torch.equal(seen[-1], tokens)


def test_word_shapes_keep_capitals_and_digits():
    shapes = {
        word: conll.SHAPES[conll.word_shape(word)]
        for word in ["the", "London", "EU", "I", "McDonald", "1996", "1996-08-30", "3.5", "B52", ",", "U.S."]
    }
    assert shapes == {
        "the": "lower",
        "London": "title",
        "EU": "upper",
        "I": "title",
        "McDonald": "mixed",
        "1996": "number",
        "1996-08-30": "number",
        "3.5": "number",
        "B52": "has digit",
        ",": "other",
        "U.S.": "upper",
    }


def test_tagger_options_are_checked():
    base = {"crf": False, "char_dim": 0, "char_filters": 50, "char_kernel_size": 3}
    config = validate(TaggerConfig, base, "model")
    assert (config.crf, config.valid_tags, config.char_dim, config.shape_dim, config.word_dropout) == (
        False,
        False,
        0,
        0,
        0.0,
    )
    model = config.build(20, 5, num_chars=10, num_shapes=3, unk_id=1, singletons_from=20, forbidden=None)
    assert model.chars is None and model.crf is None  # char_filters is unused without char_dim
    assert (
        validate(TaggerConfig, {**base, "char_dim": 8}, "model")
        .build(20, 5, num_chars=10, num_shapes=3, unk_id=1, singletons_from=20, forbidden=None)
        .chars.output_size
        == 50
    )
    for key, value, message in [
        ("crf", "yes", "model.crf='yes' must be true or false"),
        ("valid_tags", 1, "model.valid_tags=1 must be true or false"),
        ("char_dim", -1, "model.char_dim=-1 is impossible"),
        ("shape_dim", -2, "model.shape_dim=-2 is impossible"),
        ("attention_dim", 1.5, "model.attention_dim=1.5 is impossible"),
        ("word_dropout", 1.0, r"model.word_dropout=1.0 is impossible; it must be a number in \[0, 1\)"),
        ("singleton_dropout", -0.1, "model.singleton_dropout=-0.1 is impossible"),
        ("char_kernel_size", 4, "model.char_kernel_size=4 must be odd"),
    ]:
        with pytest.raises(ConfigError, match=message):
            validate(TaggerConfig, {**base, "char_dim": 8, key: value}, "model")


def test_a_taggers_weights_keep_the_names_and_shapes_saved_checkpoints_hold():
    keys = {"cell": "gru", "embedding_dim": 8, "hidden_size": 6, "bidirectional": True, "crf": True, "char_dim": 4}
    config = validate(TaggerConfig, {**keys, "char_filters": 5, "shape_dim": 3, "attention_dim": 4}, "model")
    model = config.build(40, 5, num_chars=30, num_shapes=6, unk_id=1, singletons_from=33, forbidden=None)
    layer = {"weight_ih_l0": (18, 16), "weight_hh_l0": (18, 6), "bias_ih_l0": (18,), "bias_hh_l0": (18,)}
    assert {name: tuple(weights.shape) for name, weights in model.state_dict().items()} == {
        "embedding.weight": (40, 8),
        "chars.embedding.weight": (30, 4),
        "chars.conv.weight": (5, 4, 3),
        "chars.conv.bias": (5,),
        "shapes.weight": (6, 3),
        **{f"encoder.forward_layers.0.{name}": shape for name, shape in layer.items()},
        **{f"encoder.backward_layers.0.{name}": shape for name, shape in layer.items()},
        "attention.query.weight": (4, 12),
        "attention.query.bias": (4,),
        "attention.key.weight": (4, 12),
        "attention.key.bias": (4,),
        "head.weight": (5, 24),
        "head.bias": (5,),
        "crf.transitions": (5, 5),
        "crf.start": (5,),
        "crf.end": (5,),
    }


# -- data preparation ---------------------------------------------------------------------------
def ner_cfg(root, cache, *overrides):
    return compose_config(
        [
            "task=conll2003",
            f"data.root={root}",
            f"data.cache_dir={cache}",
            "data.batch_size=2",
            "model.embedding_dim=6",
            "model.hidden_size=5",
            *overrides,
        ]
    )


@pytest.fixture()
def small_conll(tmp_path):
    folder = tmp_path / "data" / "conll2003"
    folder.mkdir(parents=True)
    train = [
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
        "",
        "Harry NNP I-NP I-PER",
        "Potter NNP I-NP I-PER",
        "Ron NNP I-NP B-PER",
        "met VBD I-VP O",
    ]
    (folder / "eng.train").write_text(conll_lines(train))
    (folder / "eng.testa").write_text(conll_lines(["Draco NNP I-NP I-PER", "met VBD I-VP O", "Harry NNP I-NP I-PER"]))
    (folder / "eng.testb").write_text(conll_lines(["The DT I-NP O", "Ministry NNP I-NP I-ORG"]))
    return tmp_path / "data"


def test_prepare_builds_vocabularies_from_training_and_tags_from_the_data(small_conll, tmp_path):
    task = get_task(ner_cfg(small_conll, tmp_path / "cache", "data.min_freq=2", "model.char_dim=4"))
    data = task.prepare()
    artifacts = data.artifacts
    assert artifacts["words"] == ["<pad>", "<unk>", "Harry", "met", "Ron"]  # min_freq 2, train only
    assert "D" not in artifacts["chars"] and "H" in artifacts["chars"]  # characters from train only
    assert artifacts["tags"] == ["O", "B-LOC", "B-ORG", "B-PER", "I-PER"]  # IOB2, all splits, O first
    assert all(isinstance(v, (str, bool, int, list)) for v in artifacts.values())  # checkpoint-safe
    assert data.summary["sentences train / val / test"] == "3 / 1 / 1"
    (val,) = list(data.val)
    assert val.tokens.tolist() == [[UNK_ID, 3, 2]]  # Draco is unknown; Harry and met are not
    assert val.tags.tolist() == [[3, 0, 3]]
    draco = [artifacts["chars"].index(c) if c in artifacts["chars"] else UNK_ID for c in "Draco"]
    assert val.chars.shape == (1, 3, 5) and val.chars[0, 0].tolist() == draco
    assert val.chars[0, 1].tolist() == [artifacts["chars"].index(c) for c in "met"] + [0, 0]
    batches = list(data.train)
    assert sorted(len(b.lengths) for b in batches) == [1, 2]
    for batch in batches:
        real = torch.arange(batch.tokens.shape[1]) < batch.lengths.unsqueeze(1)
        assert batch.tokens[~real].eq(0).all() and batch.tags[~real].eq(0).all() and batch.chars[~real].eq(0).all()
        assert batch.tokens[real].ne(0).all() and batch.chars[real][:, 0].ne(0).all()
    # the same settings load the cache; another setting builds another entry
    assert len(list((tmp_path / "cache").iterdir())) == 1
    get_task(ner_cfg(small_conll, tmp_path / "cache", "data.min_freq=2")).prepare()
    assert len(list((tmp_path / "cache").iterdir())) == 1
    get_task(ner_cfg(small_conll, tmp_path / "cache", "data.min_freq=1")).prepare()
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_words_seen_once_are_counted_for_singleton_dropout(small_conll, tmp_path):
    data = get_task(
        ner_cfg(small_conll, tmp_path / "cache", "data.min_freq=1", "model.singleton_dropout=0.5")
    ).prepare()
    words, first = data.artifacts["words"], data.artifacts["singletons_from"]
    assert words[2:first] == ["Harry", "met", "Ron"]  # seen 3, 2 and 2 times
    assert sorted(words[first:]) == [".", "Paris", "Potter", "left"]  # seen once
    with pytest.raises(ConfigError, match="data.min_freq=2 already maps them to <unk>; set data.min_freq=1"):
        get_task(ner_cfg(small_conll, tmp_path / "cache", "data.min_freq=2", "model.singleton_dropout=0.5")).prepare()


def test_lowercase_maps_words_but_characters_and_shapes_keep_capitals(small_conll, tmp_path):
    data = get_task(
        ner_cfg(small_conll, tmp_path / "cache", "data.min_freq=1", "data.lowercase=true", "model.shape_dim=3")
    ).prepare()
    assert "harry" in data.artifacts["words"] and "Harry" not in data.artifacts["words"]
    assert "H" in data.artifacts["chars"]
    (test,) = list(data.test)  # "The Ministry"
    assert [conll.SHAPES[i] for i in test.shapes[0].tolist()] == ["title", "title"]
    for batch in data.train:
        real = torch.arange(batch.tokens.shape[1]) < batch.lengths.unsqueeze(1)
        assert batch.shapes[~real].eq(0).all() and batch.shapes[real].ne(0).all()


def test_without_character_features_batches_carry_no_characters(small_conll, tmp_path):
    data = get_task(ner_cfg(small_conll, tmp_path / "cache")).prepare()
    assert all(batch.chars is None and batch.shapes is None for batch in data.train)


def test_evaluate_scores_tags_and_weighs_the_loss_by_tokens(small_conll, tmp_path):
    torch.manual_seed(0)
    task = get_task(ner_cfg(small_conll, tmp_path / "cache", "model.crf=true"))
    data = task.prepare()
    model = task.build_model(data.artifacts).eval()
    with torch.no_grad():
        outputs = [task.evaluation_step(model, batch) for batch in data.train]
    metrics = task.evaluate(outputs, data.artifacts)
    assert list(metrics)[:4] == ["f1", "precision", "recall", "loss"]
    assert {"f1_LOC", "f1_ORG", "f1_PER"} <= set(metrics) and all(0 <= metrics[k] <= 1 for k in ("f1", "recall"))
    tokens = sum(o.num_tokens for o in outputs)
    assert metrics["loss"] == pytest.approx(sum(float(o.loss) * o.num_tokens for o in outputs) / tokens)
    assert task.step(model, next(iter(data.train))).details is None  # the loss alone: no decoding, eval mode too
    assert math.isnan(task.evaluate([], data.artifacts)["f1"])


def test_document_context_reads_sentences_together_and_scores_them_one_by_one(small_conll, tmp_path):
    # training is one document of sentences with 3, 4 and 4 tokens: up to 7 tokens, the first two go together
    alone = get_task(ner_cfg(small_conll, tmp_path / "cache", "data.batch_size=1")).prepare()
    task = get_task(
        ner_cfg(small_conll, tmp_path / "cache", "data.batch_size=1", "data.context_tokens=7", "model.crf=true")
    )
    data = task.prepare()
    assert data.summary["examples"] == "runs of sentences of one document, up to 7 tokens: 2 in training"
    sentences = {tuple(b.tokens[0].tolist()): b for b in alone.train}
    runs = sorted((b for b in data.train), key=lambda b: -len(b.tokens[0]))
    assert [b.sentences for b in runs] == [[[3, 4]], [[4]]]
    first, second = (tuple(t) for t in (runs[0].tokens[0, :3].tolist(), runs[0].tokens[0, 3:].tolist()))
    assert first in sentences and second in sentences  # the two sentences, one after the other
    assert runs[0].tags[0].tolist() == sentences[first].tags[0].tolist() + sentences[second].tags[0].tolist()
    model = task.build_model(data.artifacts).eval()
    with torch.no_grad():
        details = [pair for batch in data.train for pair in task.evaluation_step(model, batch).details]
    gold = sorted(tuple(g) for g, _ in details)  # one (gold, predicted) pair per sentence, as conlleval scores
    assert gold == sorted(tuple(b.tags[0].tolist()) for b in alone.train)
    assert all(len(g) == len(p) for g, p in details)
    with pytest.raises(ConfigError, match=r"data.context_tokens=-1 is impossible; it must be an integer >= 0"):
        get_task(ner_cfg(small_conll, tmp_path / "cache", "data.context_tokens=-1")).prepare()


# -- end to end ---------------------------------------------------------------------------------
NER_TINY = [
    "task=conll2003",
    "model=gru",
    "model.bidirectional=true",
    "model.num_layers=2",
    "model.crf=true",
    "model.char_dim=6",
    "model.char_filters=5",
    "model.shape_dim=3",
    "model.word_dropout=0.1",
    "data.min_freq=1",
    "model.singleton_dropout=0.5",
    "model.valid_tags=true",
]


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory, data_root):
    tmp = tmp_path_factory.mktemp("ner")
    env = {**os.environ, "SEQMODELS_DATA_DIR": str(data_root), "SEQMODELS_CACHE_DIR": str(tmp / "cache")}
    train(tmp / "run", NER_TINY, env)
    return tmp / "run"


@pytest.mark.slow
def test_ner_run_reports_entity_metrics(ner_run):
    metrics = json.loads((ner_run / "metrics.json").read_text())
    assert metrics["task"] == "conll2003" and metrics["monitor"] == "val/f1" and metrics["mode"] == "max"
    for split in ("val", "test"):
        assert set(metrics[split]) == {"f1", "precision", "recall", "loss", "f1_LOC", "f1_MISC", "f1_ORG", "f1_PER"}
        assert all(0.0 <= metrics[split][k] <= 1.0 for k in ("f1", "precision", "recall"))
        assert metrics[split]["loss"] > 0
    log = (ner_run / "train.log").read_text()
    assert "entities train" in log and "LinearChainCRF" in log and "Conv1d" in log
    state = torch.load(ner_run / "checkpoints" / "best.pt", weights_only=True)
    assert state["artifacts"]["tags"][0] == "O" and state["config"]["model"]["crf"] is True


def test_a_continuous_cache_is_refused_for_a_tagger(ner_run, env):
    result = run_script([str(ROOT / "scripts" / "evaluate.py"), str(ner_run), "--cache-size", "10"], env, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == "error: --cache-size is an option of language_model runs; this run is a tagging run"


def test_predict_prints_tokens_tags_and_entities(ner_run, env):
    text = "Yesterday, Harry Potter met Hermione Granger in London."
    result = run_script([str(ROOT / "scripts" / "predict.py"), str(ner_run), text], env)
    answer = json.loads(result.stdout)
    assert answer["tokens"] == ["Yesterday", ",", "Harry", "Potter", "met", "Hermione", "Granger", "in", "London", "."]
    assert len(answer["tags"]) == len(answer["tokens"])
    assert all(tag == "O" or tag[:2] in ("B-", "I-") for tag in answer["tags"])
    assert is_valid_iob2(answer["tags"])  # the run decodes with model.valid_tags=true
    spans = entity_spans(answer["tags"])
    assert [(e["type"], e["start"], e["end"]) for e in answer["entities"]] == [(s.type, s.start, s.end) for s in spans]
    for entity in answer["entities"]:  # the entity's own words, as written in the text
        assert entity["text"] in text and entity["text"].startswith(answer["tokens"][entity["start"]])
        assert entity["text"].endswith(answer["tokens"][entity["end"] - 1])


@pytest.mark.parametrize("variant", [["model=rnn"], ["model=lstm", "model.bidirectional=true", "model.num_layers=2"]])
def test_every_model_variant_tags(variant, tmp_path, env):
    train(tmp_path / "run", ["task=conll2003", *variant, "trainer.limit_train_batches=2"], env)
    assert "f1_PER" in json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]


def test_a_document_context_run_trains_and_predicts(tmp_path, env):
    train(
        tmp_path / "run",
        [
            "task=conll2003",
            "model=lstm",
            "model.bidirectional=true",
            "model.crf=true",
            "model.attention_dim=4",
            "data.context_tokens=60",
            "data.batch_size=4",
            "trainer.max_epochs=1",
        ],
        env,
    )
    log = (tmp_path / "run" / "train.log").read_text()
    assert "runs of sentences of one document, up to 60 tokens" in log and "attention.query" in log
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["test"]["f1"] <= 1 and metrics["test"]["loss"] > 0
    answer = json.loads(
        run_script(
            [str(ROOT / "scripts" / "predict.py"), str(tmp_path / "run"), "Harry met Ron. Ron left Paris."], env
        ).stdout
    )
    assert len(answer["tags"]) == len(answer["tokens"]) == 8  # the text is one document, tagged as one sequence


def test_missing_conll_is_one_clear_error(tmp_path, env):
    result = train(tmp_path / "run", ["task=conll2003", f"data.root={tmp_path / 'empty'}"], env, check=False)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"error: CoNLL-2003 not found: put eng.train, eng.testa, eng.testb in {tmp_path / 'empty' / 'conll2003'}"
        )
    )
    assert "Traceback" not in result.stderr
