"""Sequence tagging of the user's files (`task=tagging`) and the UD preset: column files and CoNLL-U, tag
schemes and the metric that follows them, the validation split when there is no validation file, one clear
line for each kind of bad input (before training), predict on the same formats, and saved NER runs
(`task.kind: ner`) that still load and resume."""

from __future__ import annotations

import io
import itertools
import json
import logging
import random

import pytest
import torch

from conftest import TINY
from helpers.decoding import best_valid_path
from helpers.logs import logging_to
from seqmodels import load_run
from seqmodels.config import compose_config
from seqmodels.data import conllu
from seqmodels.data.encoding import TextEncoding
from seqmodels.data.tag_schemes import Span, detect_scheme, entity_spans, forbidden_moves, tag_set_scheme
from seqmodels.data.tagging import Columns, SplitBatches, build_entry, read_splits, read_tagged
from seqmodels.errors import ConfigError, DataError
from seqmodels.evaluate import evaluate_checkpoint
from seqmodels.models import SequenceTagger, TaggerConfig
from seqmodels.predict import main as predict_main
from seqmodels.tasks import get_task
from seqmodels.tasks.tagging_metrics import token_scores
from seqmodels.train import check_config
from seqmodels.train import run as train_run
from seqmodels.training.checkpoint import load_checkpoint, save_checkpoint
from seqmodels.training.trainer import monitored

pytestmark = pytest.mark.usefixtures("one_thread")

UTF8 = TextEncoding()

# -- fixtures in the real formats ------------------------------------------------------------------------
WORDS = {
    "DET": ["the", "a", "this"],
    "NOUN": ["cat", "dog", "film", "house"],
    "VERB": ["saw", "liked", "sold"],
    "ADJ": ["old", "red", "fine"],
    "PUNCT": [".", "!"],
}
PATTERNS = [["DET", "NOUN", "VERB", "DET", "NOUN", "PUNCT"], ["DET", "ADJ", "NOUN", "VERB", "PUNCT"]]


def pos_sentences(count: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    return [[(rng.choice(WORDS[tag]), tag) for tag in rng.choice(PATTERNS)] for _ in range(count)]


def write_columns(path, sentences, sep=" ") -> str:
    """`word<sep>tag` lines, a blank line after each sentence."""
    path.write_text("".join("".join(f"{w}{sep}{t}\n" for w, t in s) + "\n" for s in sentences), encoding="utf-8")
    return str(path)


def conllu_sentence(number: int, pairs: list[tuple[str, str]], doc: bool = False) -> str:
    lines = [f"# newdoc id = d{number}"] if doc else []
    lines += [f"# sent_id = s{number}", f"# text = {' '.join(w for w, _ in pairs)}"]
    for i, (word, tag) in enumerate(pairs, 1):
        lines.append("\t".join([str(i), word, word.lower(), tag, tag[:2], "_", "0", "dep", "_", "_"]))
    return "\n".join(lines) + "\n\n"


def write_conllu(path, sentences, bom: bool = False) -> str:
    text = "".join(conllu_sentence(i, s, doc=i % 3 == 0) for i, s in enumerate(sentences))
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return str(path)


# A sentence with a multiword token (don't = do + n't) and an empty node (5.1), as UD writes them.
UD_SENTENCE = """# newdoc id = weblog-1
# sent_id = weblog-1-0001
# text = I don't like it.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tlike\tlike\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tliked\tlike\tVERB\tVBD\t_\t_\t_\t4:conj\t_
5\tit\tit\tPRON\tPRP\t_\t4\tobj\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = weblog-1-0002
1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_

# newdoc id = weblog-2
1\tGo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
"""


def tagging_cfg(tmp_path, *overrides: str):
    return compose_config(
        [
            "task=tagging",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.batch_size=4",
            "data.min_freq=1",
            "model.embedding_dim=6",
            "model.hidden_size=5",
            *overrides,
        ]
    )


def prepared(tmp_path, *overrides: str):
    task = get_task(tagging_cfg(tmp_path, *overrides))
    return task, task.prepare()


# -- reading -------------------------------------------------------------------------------------------
def test_conllu_words_skip_multiword_tokens_and_empty_nodes_as_ud_tools_do():
    lines = UD_SENTENCE.splitlines()
    sentences = conllu.parse(lines, "ud.conllu", "upos")
    assert [s.words for s in sentences] == [["I", "do", "n't", "like", "it", "."], ["Yes"], ["Go"]]
    assert [s.tags for s in sentences] == [["PRON", "AUX", "PART", "VERB", "PRON", "PUNCT"], ["INTJ"], ["VERB"]]
    assert [s.document for s in sentences] == [0, 0, 1]  # `# newdoc` opens a document
    assert [lines[i].split("\t")[0] for i in sentences[0].lines] == ["1", "2", "3", "4", "5", "6"]
    assert conllu.parse(lines, "ud.conllu", "xpos")[0].tags == ["PRP", "VBP", "RB", "VB", "PRP", "."]
    assert conllu.looks_like_conllu(lines)


def test_conllu_out_keeps_ten_fields_and_puts_the_prediction_in_the_tag_field():
    lines = UD_SENTENCE.splitlines()
    sentences = conllu.parse(lines, "ud.conllu", None)
    tags = [["X"] * len(s.words) for s in sentences]
    out = conllu.with_tags(lines, sentences, tags, "upos")
    assert len(out) == len(lines)
    for before, after in zip(lines, out):
        if before.startswith("#") or not before or "-" in before.split("\t")[0] or "." in before.split("\t")[0]:
            assert after == before  # comments, multiword tokens and empty nodes as they were
        else:
            fields, old = after.split("\t"), before.split("\t")
            assert len(fields) == 10 and fields[3] == "X" and fields[:3] + fields[4:] == old[:3] + old[4:]


def test_a_file_is_read_as_conllu_or_columns_and_says_which(tmp_path):
    sentences = pos_sentences(4)
    found, kind = read_tagged(write_conllu(tmp_path / "x.conllu", sentences), Columns(), UTF8)
    assert kind == "CoNLL-U, UPOS" and [s.tags for s in found] == [[t for _, t in s] for s in sentences]
    found, kind = read_tagged(write_columns(tmp_path / "x.txt", sentences, sep="\t"), Columns(), UTF8)
    assert kind == "2 columns, word 0, tag 1" and [s.words for s in found] == [[w for w, _ in s] for s in sentences]
    # any columns: the tag first, the word third
    path = tmp_path / "other.txt"
    path.write_text("".join("".join(f"{t} _ {w}\n" for w, t in s) + "\n" for s in sentences), encoding="utf-8")
    found, kind = read_tagged(path, Columns(word=2, tag=0), UTF8)
    assert kind == "3 columns, word 2, tag 0" and found[0].words[0] == sentences[0][0][0]


# -- tag schemes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sequences,scheme",
    [
        ([["I-PER", "I-PER", "O", "I-LOC"]], "IOB1"),
        ([["B-PER", "I-PER", "O", "B-LOC"], ["I-PER", "B-PER"]], "IOB1"),  # a span opened by I-: IOB1
        ([["B-PER", "I-PER", "O", "B-LOC"]], "IOB2"),
        ([["B-PER", "E-PER", "O", "S-LOC"]], "IOBES"),
        ([["B-PER", "L-PER", "O", "U-LOC"]], "BILOU"),
        ([["DET", "NOUN", "VERB"]], None),
    ],
)
def test_the_scheme_is_detected_from_the_tags(sequences, scheme):
    assert detect_scheme(sequences) == scheme


def test_iobes_and_bilou_spans_are_their_iob2_spans():
    iobes = ["B-PER", "I-PER", "E-PER", "S-LOC", "O", "S-ORG", "S-ORG"]
    bilou = ["B-PER", "I-PER", "L-PER", "U-LOC", "O", "U-ORG", "U-ORG"]
    expected = [Span("PER", 0, 3), Span("LOC", 3, 4), Span("ORG", 5, 6), Span("ORG", 6, 7)]
    assert entity_spans(iobes) == entity_spans(bilou) == expected
    assert tag_set_scheme(iobes) == "IOBES" and tag_set_scheme(bilou) == "BILOU" and tag_set_scheme(["NOUN"]) is None


IOBES = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]


def is_valid_iobes(tags: list[str]) -> bool:
    inside = None  # the type of an open span
    for tag in tags:
        prefix, _, kind = tag.partition("-")
        if (prefix in ("I", "E") and inside != kind) or (prefix in ("O", "B", "S") and inside is not None):
            return False
        inside = kind if prefix in ("B", "I") else None
    return inside is None


def test_iobes_forbids_what_leaves_a_span_open_or_closes_none():
    transitions, start, end = forbidden_moves(IOBES)
    assert [IOBES[i] for i in range(5) if start[i]] == ["I-PER", "E-PER"]
    assert [IOBES[i] for i in range(5) if end[i]] == ["B-PER", "I-PER"]
    allowed = {(IOBES[i], IOBES[j]) for i in range(5) for j in range(5) if not transitions[i][j]}
    for before, after in itertools.product(IOBES, repeat=2):
        assert ((before, after) in allowed) == _pair_valid(before, after), (before, after)


def _pair_valid(before: str, after: str) -> bool:
    """Whether `after` may follow `before` inside some valid IOBES sequence."""
    opened = {
        "B-PER": ["B-PER"],
        "I-PER": ["B-PER", "I-PER"],
        "O": ["O"],
        "E-PER": ["B-PER", "E-PER"],
        "S-PER": ["S-PER"],
    }
    closing = {"O": [], "S-PER": [], "B-PER": ["E-PER"], "I-PER": ["E-PER"], "E-PER": []}
    sequence = [*opened[before], after, *closing[after]]
    return is_valid_iobes(sequence)


@pytest.mark.parametrize("crf", [False, True])
def test_iobes_decoding_is_the_best_valid_sequence_by_brute_force(crf):
    torch.manual_seed(1)
    config = TaggerConfig(cell="lstm", embedding_dim=4, hidden_size=3, dropout=0.0, crf=crf, valid_tags=True)
    model = SequenceTagger(config, 20, 5, forbidden=forbidden_moves(IOBES)).eval()
    if crf:
        with torch.no_grad():
            for parameter in model.crf.parameters():
                parameter.normal_()
    lengths = torch.tensor([4, 1, 3])
    emissions = torch.randn(3, 4, 5) * 3
    paths = model.decode(emissions, lengths)
    for row, length in enumerate(lengths.tolist()):
        best = best_valid_path(model, emissions, row, length, 5, lambda t: is_valid_iobes([IOBES[i] for i in t]))
        assert paths[row, :length].tolist() == best


def test_token_scores_count_each_tag():
    gold = [["DET", "NOUN", "VERB"], ["NOUN", "UNSEEN"]]
    predicted = [["DET", "NOUN", "NOUN"], ["NOUN", "NOUN"]]
    scores = token_scores(gold, predicted, tags=["DET", "NOUN", "VERB", "UNSEEN", "ADJ"])
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["f1_NOUN"] == pytest.approx(2 * (2 / 4) * 1.0 / (2 / 4 + 1.0))  # P 2/4, R 2/2
    assert scores["f1_DET"] == 1.0 and scores["f1_VERB"] == scores["f1_UNSEEN"] == scores["f1_ADJ"] == 0.0


# -- the pipeline, without a Task ------------------------------------------------------------------------
def test_the_pipeline_splits_checks_and_batches_without_a_task(tmp_path, caplog):
    train = write_columns(tmp_path / "train.txt", pos_sentences(40))
    with caplog.at_level("INFO", logger="seqmodels"):
        splits = read_splits({"train": train}, Columns(), UTF8, val_fraction=0.25, seed=7)
    assert [len(splits.sentences[s]) for s in ("train", "val")] == [30, 10] and "test" not in splits.sentences
    assert "no data.val: 10 of the 40 training sentences (data.val_fraction=0.25, data.split_seed=7)" in caplog.text
    assert "no data.test: the run reports validation only" in caplog.text
    again = read_splits({"train": train}, Columns(), UTF8, val_fraction=0.25, seed=7)
    other = read_splits({"train": train}, Columns(), UTF8, val_fraction=0.25, seed=8)
    assert again.sentences["val"] == splits.sentences["val"] != other.sentences["val"]
    assert splits.scheme is None
    entry = build_entry(splits, min_freq=1, lowercase=False, candidates=[])
    assert entry["tags"] == sorted(WORDS) and entry["stats"]["val"]["sentences"] == 10
    examples = SplitBatches(entry["val"], 0, chars=True, shapes=False)
    batch = examples.batch([0, 1])
    first = splits.sentences["val"][0].words
    assert batch.lengths[0] == len(first)
    spelled = ["".join(entry["chars"][c] for c in batch.chars[0, i].tolist() if c) for i in range(len(first))]
    assert spelled == first and batch.tags[0, : len(first)].tolist() == [
        entry["tags"].index(t) for t in splits.sentences["val"][0].tags
    ]


# -- task=tagging ----------------------------------------------------------------------------------------
def test_plain_tags_monitor_token_accuracy_and_score_each_tag(tmp_path):
    train = write_columns(tmp_path / "train.txt", pos_sentences(30))
    val = write_conllu(tmp_path / "val.conllu", pos_sentences(8, seed=1))  # formats may differ per file
    task, data = prepared(tmp_path, f"data.train={train}", f"data.val={val}")
    assert task.monitor == "accuracy" and data.test is None
    assert data.summary["tag scheme"] == "plain tags (no spans): token accuracy, F1 per tag"
    assert data.summary["test"] == "none (no data.test): validation only"
    assert data.summary["val from"].endswith("(CoNLL-U, UPOS)")
    model = task.build_model(data.artifacts).eval()
    with torch.no_grad():
        metrics = task.evaluate([task.evaluation_step(model, b) for b in data.val], data.artifacts)
    assert list(metrics)[:2] == ["accuracy", "loss"] and set(metrics) == {"accuracy", "loss"} | {
        f"f1_{t}" for t in WORDS
    }
    assert 0 <= metrics["accuracy"] <= 1
    assert monitored(task, None) == ("accuracy", "max") and monitored(task, "loss") == ("loss", "min")
    with pytest.raises(
        ConfigError, match=r"^trainer.monitor=f1 is not a metric of tagging runs; use one of accuracy, loss"
    ):
        monitored(task, "f1")  # no spans: no entity F1 to monitor


def test_span_tags_of_a_two_column_file_monitor_entity_f1(tmp_path):
    sentences = [
        [("Harry", "B-PER"), ("Potter", "E-PER"), ("met", "O"), ("Ron", "S-PER"), ("in", "O"), ("Paris", "S-LOC")]
    ] * 12
    train = write_columns(tmp_path / "train.txt", sentences)
    task, data = prepared(tmp_path, f"data.train={train}", "model.crf=true", "model.valid_tags=true")
    assert task.monitor == "f1" and data.summary["tag scheme"].startswith("IOBES spans")
    assert data.artifacts["tags"] == ["O", "B-PER", "E-PER", "S-LOC", "S-PER"]
    model = task.build_model(data.artifacts).eval()
    assert model.end_penalty[1] == float("-inf")  # a sentence may not end inside a span
    answer = task.predict(model, data.artifacts, "Harry Potter met Ron in Paris")
    assert is_valid_iobes(answer["tags"]) and set(answer) == {"tokens", "tags", "entities"}


def test_task_tagging_needs_a_training_file_and_presets_read_their_own(tmp_path):
    with pytest.raises(ConfigError, match=r"^task=tagging needs the training sentences: add data.train=FILE"):
        check_config(tagging_cfg(tmp_path))
    with pytest.raises(ConfigError, match=r"^data.train reads the user's files, but data.dataset=conll2003"):
        check_config(compose_config(["task=conll2003", "data.train=x.txt"]))
    with pytest.raises(ConfigError, match=r"^data.tag_column=1.5 is impossible; name a column by its number"):
        check_config(tagging_cfg(tmp_path, "data.train=x", "data.tag_column=1.5"))


# -- bad input: one line each, before training --------------------------------------------------------------
def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_ragged_line_names_file_and_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("The DET\ncat NOUN\nsat VERB extra\n\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        prepared(tmp_path, f"data.train={path}")
    assert one_line(error).startswith(f"{path}:3: 3 columns where line 1 has 2; a CoNLL file has one word per line")


def test_a_byte_order_mark_is_dropped(tmp_path):
    columns = tmp_path / "train.txt"
    columns.write_bytes(b"\xef\xbb\xbfHarry B-PER\nmet O\n\nRon B-PER\nleft O\n")
    found, _ = read_tagged(columns, Columns(), UTF8)
    assert [s.words for s in found] == [["Harry", "met"], ["Ron", "left"]]
    ud = write_conllu(tmp_path / "train.conllu", pos_sentences(6), bom=True)
    found, kind = read_tagged(ud, Columns(), UTF8)  # still recognised as CoNLL-U
    assert kind == "CoNLL-U, UPOS" and not found[0].words[0].startswith("\ufeff")


def test_latin1_bytes_in_a_utf8_file_are_refused_with_file_line_and_byte(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes("Paris B-LOC\nest O\nbelle O\n\nM\u00fcller B-PER\nrit O\n\n".encode("latin-1"))
    with pytest.raises(DataError) as error:
        prepared(tmp_path, f"data.train={path}")
    assert one_line(error) == (
        f"{path}:5: byte 2 (0xfc) is not utf-8; name the file's encoding with data.encoding=ENCODING (e.g. "
        f"latin-1), convert the file (iconv -f ENCODING -t utf-8), or read on with data.encoding_errors=replace"
    )
    _, data = prepared(tmp_path, f"data.train={path}", f"data.val={path}", "data.encoding=latin-1")
    assert "Müller" in data.artifacts["words"]


def test_a_tag_seen_only_in_test_is_counted_and_scored_as_an_error(tmp_path):
    train = write_columns(tmp_path / "train.txt", pos_sentences(20))
    test = write_columns(tmp_path / "test.txt", [[("wow", "INTJ"), ("the", "DET"), ("cat", "NOUN")], *pos_sentences(3)])
    task, data = prepared(tmp_path, f"data.train={train}", f"data.test={test}")
    assert data.summary["tags unseen in training, test"] == "1 word (INTJ 1): scored as errors"
    assert "INTJ" in data.artifacts["tags"]  # an output the model has, which training never rewards
    model = task.build_model(data.artifacts).eval()
    with torch.no_grad():
        outputs = [task.evaluation_step(model, b) for b in data.test]
    metrics = task.evaluate(outputs, data.artifacts)
    pairs = [(g, p) for output in outputs for gold, predicted in output.details for g, p in zip(gold, predicted)]
    assert len(pairs) == 3 + sum(len(s) for s in pos_sentences(3))  # every test word scored, the unseen one too
    assert metrics["accuracy"] == pytest.approx(sum(g == p for g, p in pairs) / len(pairs))
    assert torch.isfinite(torch.tensor(metrics["loss"])) and "f1_INTJ" in metrics


def test_a_file_with_one_tag_only_is_refused(tmp_path):
    path = write_columns(tmp_path / "train.txt", [[(w, "O") for w, _ in s] for s in pos_sentences(5)])
    with pytest.raises(DataError) as error:
        prepared(tmp_path, f"data.train={path}")
    assert one_line(error) == (
        f"{path}: every word has the tag 'O'; a tagger needs two tags or more to learn (is data.tag_column the "
        f"tags' column?)"
    )


def test_a_wrong_column_index_names_the_file_and_its_columns(tmp_path):
    path = write_columns(tmp_path / "train.txt", pos_sentences(5))
    with pytest.raises(DataError) as error:
        prepared(tmp_path, f"data.train={path}", "data.tag_column=3")
    first = " ".join(pos_sentences(5)[0][0])
    assert (
        one_line(error)
        == f"{path}: data.tag_column=3 but the file has 2 columns (line 1: {first!r}); columns count from 0"
    )
    with pytest.raises(DataError, match=r"holds whitespace columns, not CoNLL-U: data.tag_column=upos names no column"):
        prepared(tmp_path, f"data.train={path}", "data.tag_column=upos")
    ud = write_conllu(tmp_path / "train.conllu", pos_sentences(5))
    with pytest.raises(
        DataError, match=r"is CoNLL-U: data.tag_column=2 names no tag field of it; use data.tag_column=upos or xpos"
    ):
        prepared(tmp_path, f"data.train={ud}", "data.tag_column=2")
    with pytest.raises(DataError, match=r"data.train=nowhere.txt: no such file"):
        prepared(tmp_path, "data.train=nowhere.txt")


def test_span_tags_mixed_with_others_name_the_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("Harry B-PER\nmet O\n\nRon PER\nleft O\n\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        prepared(tmp_path, f"data.train={path}", "data.val_fraction=0.5")
    assert one_line(error).startswith(
        f"{path}:4: the tag 'PER' is not a span tag (O, or B-, I-, E-, S-, L-, U- and a type)"
    )


def test_conllu_without_the_tag_field_names_the_line(tmp_path):
    path = tmp_path / "train.conllu"
    path.write_text("1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        prepared(tmp_path, f"data.train={path}", "data.tag_column=xpos")
    assert one_line(error) == (
        f"{path}:1: the word 'Hi' has no XPOS ('_'); tag another column (data.tag_column=upos) or fill in the tags"
    )


# -- runs: train, predict, and saved NER runs ----------------------------------------------------------------
@pytest.fixture(scope="module")
def pos_run(tmp_path_factory):
    """A run of task=tagging on one CoNLL-U file (no validation, no test file), and what it logged."""
    folder = tmp_path_factory.mktemp("pos")
    train = write_conllu(folder / "train.conllu", pos_sentences(40))
    cfg = compose_config(
        [
            "task=tagging",
            *TINY,
            f"data.train={train}",
            f"data.cache_dir={folder / 'cache'}",
            "model.char_dim=4",
            "model.char_filters=4",
            "trainer.log_every_n_steps=100",
        ]
    )
    logged = io.StringIO()
    with logging_to(logging.StreamHandler(logged)):
        train_run(cfg, folder / "run")
    return folder, logged.getvalue()


def test_a_run_without_test_file_reports_validation_only(pos_run):
    folder, logged = pos_run
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    assert metrics["monitor"] == "val/accuracy" and "test" not in metrics and "accuracy" in metrics["val"]
    assert "no data.val: 4 of the 40 training sentences" in logged
    assert "no data.test: the run reports validation only" in logged and "| test none (no test set)" in logged


def test_predict_writes_conllu_with_the_prediction_in_upos(pos_run, tmp_path, capsys):
    folder, _ = pos_run
    source = tmp_path / "in.conllu"
    source.write_text(UD_SENTENCE, encoding="utf-8")
    output = tmp_path / "out.conllu"
    assert predict_main([str(folder / "run"), "--input", str(source), "--output", str(output), "-q"]) == 0
    lines, given = output.read_text(encoding="utf-8").splitlines(), UD_SENTENCE.splitlines()
    assert len(lines) == len(given)
    tags = load_run(folder / "run").artifacts["tags"]
    for before, after in zip(given, lines):
        fields = before.split("\t")
        if len(fields) == 10 and fields[0].isdigit():
            assert after.split("\t")[3] in tags and after.split("\t")[:3] == fields[:3]
        else:
            assert after == before
    code = predict_main([str(folder / "run"), "--input", str(source), "--tag-scheme", "iob1", "-q"])
    assert code == 2 and "--tag-scheme iob1 rewrites IOB2 spans, but this run" in capsys.readouterr().err


def test_a_saved_ner_run_still_loads_predicts_and_resumes(data_root, tmp_path):
    cfg = compose_config(["task=conll2003", *TINY, f"data.root={data_root}", f"data.cache_dir={tmp_path / 'cache'}"])
    train_run(cfg, tmp_path / "run")
    for name in ("best.pt", "last.pt"):  # as the NER task of earlier versions saved them
        path = tmp_path / "run" / "checkpoints" / name
        state = load_checkpoint(path)
        state["config"]["task"]["kind"] = "ner"
        save_checkpoint({k: v for k, v in state.items() if k != "format"}, path)
    run = load_run(tmp_path / "run")
    assert run.cfg.task.kind in ("ner", "tagging") and type(run.task).__name__ == "TaggingTask"
    assert run.predict("Harry Potter met Ron in London.")["tokens"][0] == "Harry"
    assert set(evaluate_checkpoint(load_run(tmp_path / "run", data_root=data_root))["test"]) >= {"f1", "f1_PER"}
    more = compose_config(
        [
            "task=conll2003",
            *TINY,
            f"data.root={data_root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "trainer.max_epochs=2",
            f"trainer.resume={tmp_path / 'run'}",
        ]
    )
    results = train_run(more, tmp_path / "resumed")
    assert results["epochs_run"] == 2 and "f1" in results["test"]
