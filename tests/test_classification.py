"""Text classification of a user's files: every format read and detected, the splits (stratified validation,
subsets), the labels and their metrics, multi-label data, SST's trees, every bad input refused in one line
before training, and whole runs whose labels come back from predict, load_run and the ONNX sidecar."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from conftest import TINY, composed
from helpers.labelled_text import tickets, write_csv, write_fasttext, write_folders, write_jsonl, write_sst
from helpers.logs import logging_to
from seqmodels import load_run
from seqmodels.data import sst
from seqmodels.data.classification import UNSEEN, ClassificationData, build_splits, locate, read_splits
from seqmodels.data.encoding import TextEncoding
from seqmodels.data.labelled_text import Columns, check_examples, detect_format, label_order, read_labelled
from seqmodels.data.splits import seeded_split, stratified_split, stratified_subset
from seqmodels.errors import ConfigError, DataError
from seqmodels.schema import validate
from seqmodels.tasks.classification_metrics import LabelCounts, per_label, single_label_counts
from seqmodels.train import check_config
from seqmodels.train import run as train_run

pytestmark = pytest.mark.usefixtures("one_thread")


def data_config(**keys) -> ClassificationData:
    return validate(ClassificationData, {"dataset": "files", **keys}, "data")


def prepared(tmp_path: Path, *overrides: str):
    """The classification task of `overrides` on the user's files, and its prepared data."""
    task = check_config(
        composed("task=classification", *TINY, f"data.cache_dir={tmp_path / 'cache'}", "data.min_freq=1", *overrides)
    )
    return task, task.prepare()


# -- reading the formats -----------------------------------------------------------------------------------
def test_csv_with_a_header_reads_columns_by_name_and_joins_several_text_columns(tmp_path):
    path = write_csv(tmp_path / "tickets.csv", [("Refund, please", "billing"), ("Where is my parcel", "shipping")])
    read = read_labelled(path, Columns(("title", "text"), "label"))
    assert read.texts == ["Refund,\nRefund, please", "Where\nWhere is my parcel"]
    assert read.labels == [("billing",), ("shipping",)] and not read.multi_label
    assert read.describe() == "CSV with a header (id, title, text, label)"
    assert read.places == [f"{path}:2", f"{path}:3"]


def test_csv_without_a_header_reads_columns_by_index(tmp_path):
    path = write_csv(
        tmp_path / "tickets.csv", [("Refund please", "billing"), ("Lost parcel", "shipping")], header=False
    )
    read = read_labelled(path, Columns((2,), 3))
    assert read.texts == ["Refund please", "Lost parcel"] and read.labels == [("billing",), ("shipping",)]
    assert read.describe() == "CSV without a header"


def test_tsv_is_detected_by_name_or_by_a_tab_in_the_first_line(tmp_path):
    rows = [("Refund please", "billing"), ("Lost parcel", "shipping")]
    named = write_csv(tmp_path / "t.tsv", rows, delimiter="\t")
    unnamed = write_csv(tmp_path / "t.data", rows, delimiter="\t")
    for path in (named, unnamed):
        read = read_labelled(path)
        assert read.format == "tsv" and read.texts == ["Refund please", "Lost parcel"]


def test_json_lines_read_named_fields_and_lists_of_labels_are_multi_label(tmp_path):
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [{"body": "Refund for parcel", "tags": ["billing", "shipping"]}, {"body": "Password", "tags": ["account"]}],
    )
    read = read_labelled(path, Columns(("body",), "tags"))
    assert read.format == "jsonl" and read.multi_label
    assert read.labels == [("billing", "shipping"), ("account",)]


def test_fasttext_lines_give_their_labels_and_text(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("__label__billing Refund please\n\n__label__a __label__b Two labels here\n", encoding="utf-8")
    read = read_labelled(path)
    assert read.format == "fasttext" and read.texts == ["Refund please", "Two labels here"]
    assert read.labels == [("billing",), ("a", "b")] and read.multi_label
    assert read.places == [f"{path}:1", f"{path}:3"]


def test_a_folder_per_label_is_the_aclimdb_layout_and_unsup_is_not_a_label(tmp_path):
    root = write_folders(tmp_path / "train", [("good", "pos"), ("bad", "neg"), ("fine", "pos")], unlabelled=2)
    read = read_labelled(root)
    assert read.format == "folders" and sorted(set(read.labels)) == [("neg",), ("pos",)]
    assert len(read.texts) == 3 and read.describe() == "a folder per label"


def test_formats_are_detected_from_the_content_first(tmp_path):
    assert detect_format(tmp_path / "x.csv", '{"text": "a", "label": "b"}\n') == "jsonl"
    assert detect_format(tmp_path / "x.txt", "__label__a text\n") == "fasttext"
    assert detect_format(tmp_path / "x.txt", "text,label\n") == "csv"
    assert detect_format(tmp_path, "") == "folders"


def test_labels_are_ordered_as_numbers_when_they_are_numbers():
    assert label_order(["10", "2", "1", "2"]) == ["1", "2", "10"]
    assert label_order(["b", "a", "10"]) == ["10", "a", "b"]


# -- bad input: one line each, before training ------------------------------------------------------------
def test_a_row_without_a_label_names_the_file_and_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\nRefund please,billing\nLost parcel,\nPassword,account\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        check_examples(read_labelled(path), "data.train")
    assert str(error.value) == (
        f"data.train={path}: 1 example has no label (first at {path}:3); every example needs one: fill it in or "
        f"remove the row"
    )


def test_an_empty_text_names_the_file_and_line(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [{"text": "Refund", "label": "billing"}, {"text": "  ", "label": "billing"}])
    with pytest.raises(DataError, match=rf"^data.val={path}: 1 text is empty \(first at {path}:2\); remove"):
        check_examples(read_labelled(path), "data.val")


def test_a_wrong_column_name_lists_the_columns_found(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("Refund", "billing")])
    with pytest.raises(DataError) as error:
        read_labelled(path, Columns(("review",), "label"))
    assert str(error.value) == f"{path}: no column 'review' (data.text_column); the header has: id, title, text, label"
    jsonl = write_jsonl(tmp_path / "t.jsonl", [{"body": "Refund", "label": "billing"}])
    with pytest.raises(DataError, match=r"no field 'text' \(data.text_column\); the objects have: body, label"):
        read_labelled(jsonl)


def test_a_byte_order_mark_is_dropped_so_the_first_column_keeps_its_name(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\r\nRefund please,billing\r\nLost parcel,shipping\r\n")
    read = read_labelled(path)
    assert read.header == ["text", "label"] and read.texts == ["Refund please", "Lost parcel"]


def test_latin1_bytes_in_a_utf8_file_are_refused_with_file_and_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("text,label\nRefund please,billing\nCaf\xe9 closed,account\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"^{path}:3: byte 4 \(0xe9\) is not utf-8; name the file's encoding"):
        read_labelled(path)
    assert read_labelled(path, encoding=TextEncoding("latin-1")).texts[1] == "Café closed"


def test_quoted_newlines_commas_and_quotes_parse(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"First line,\nsecond ""quoted"" line",billing\nPlain,shipping\n', encoding="utf-8")
    read = read_labelled(path)
    assert read.texts == ['First line,\nsecond "quoted" line', "Plain"]
    assert read.places == [f"{path}:2", f"{path}:4"]  # a record starts where its first line is


def test_an_unquoted_comma_that_shifts_the_columns_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\nRefund, please,billing\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}:2: 3 fields where the header has 2; a field that holds a comma"):
        read_labelled(path)


def test_a_file_with_one_label_only_is_refused(tmp_path):
    path = write_csv(tmp_path / "t.csv", tickets(12, labels=("billing",)))
    with pytest.raises(DataError) as error:
        build_splits(data_config(train=str(path)), locate(data_config(train=str(path))))
    assert str(error.value) == (
        f"data.train={path}: every example has the label 'billing' (of 12); a classifier needs at least two labels"
    )


def test_a_label_seen_only_in_test_is_counted_warned_and_scored_wrong(tmp_path, caplog):
    train = write_csv(tmp_path / "train.csv", tickets(30))
    test = write_csv(tmp_path / "test.csv", [*tickets(6, seed=1), ("Cancel my subscription", "cancel")] * 2)
    with caplog.at_level(logging.WARNING, logger="seqmodels"):
        task, data = prepared(tmp_path, f"data.train={train}", f"data.test={test}")
    assert f"{test}: 2 test labels never seen in training (1 label: 'cancel'); they count as errors" in caplog.text
    labels = torch.cat([batch.labels for batch in data.test])
    assert int((labels == UNSEEN).sum()) == 2 and len(labels) == 14
    model = task.build_model(data.artifacts)
    from seqmodels.training.evaluation import evaluate_split

    metrics = evaluate_split(task, model, data.test, data.artifacts, "test", torch.device("cpu"))
    assert metrics["accuracy"] <= 12 / 14 and metrics["loss"] == metrics["loss"]  # finite, never nan


def test_missing_train_and_misplaced_keys_are_refused_before_reading(tmp_path):
    with pytest.raises(ConfigError, match=r"task=classification needs the training examples: add data.train=FILE"):
        check_config(composed("task=classification"))
    with pytest.raises(ConfigError, match=r"data.train reads the user's files, but data.dataset=imdb reads its own"):
        check_config(composed("task=imdb", "data.train=x.csv"))
    with pytest.raises(ConfigError, match=r"data.text_column=\[\] is impossible"):
        check_config(composed("task=classification", "data.train=x.csv", "data.text_column=[]"))


# -- splits --------------------------------------------------------------------------------------------------
def test_the_stratified_split_holds_out_each_labels_share_and_is_seeded():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 1
    train, val = stratified_split(labels, 0.2, seed=3)
    assert [labels[i] for i in val].count("a") == 10 and [labels[i] for i in val].count("b") == 6
    assert 80 in train  # a label seen once stays in training
    assert sorted(train + val) == list(range(81)) and (train, val) == stratified_split(labels, 0.2, seed=3)
    assert val != stratified_split(labels, 0.2, seed=4)[1]


def test_a_stratified_subset_keeps_each_labels_share_and_at_least_one_of_each():
    labels = ["a"] * 90 + ["b"] * 9 + ["c"] * 1
    subset = stratified_subset(labels, 10, seed=0)
    assert len(subset) == 10 and sorted({labels[i] for i in subset}) == ["a", "b", "c"]
    assert [labels[i] for i in subset].count("a") == 8
    assert subset == stratified_subset(labels, 10, seed=0) != stratified_subset(labels, 10, seed=1)


def test_without_val_a_stratified_share_of_train_validates_and_train_examples_subsets_after_it(tmp_path):
    train = write_csv(tmp_path / "train.csv", tickets(60))
    config = data_config(train=str(train), val_fraction=0.2, train_examples=9)
    splits, names, read = read_splits(config, locate(config))
    assert names is None and splits["test"] is None
    assert sorted(splits["val"].labels).count(("billing",)) == 4 and len(splits["val"].texts) == 12
    assert dict(read)["data.val"].startswith("none: data.val_fraction=0.2 of the training examples, stratified")
    entry = build_splits(config, locate(config), subset_seed=7)
    assert len(entry["train"]["labels"]) == 9 and entry["train"]["labels"].bincount().tolist() == [3, 3, 3]
    assert len(entry["val"]["labels"]) == 12  # the subset is drawn after validation, which stays the same
    assert entry["labels"] == ["account", "billing", "shipping"] and not entry["has_test"]


def test_imdb_keeps_its_validation_split(data_root, tmp_path):
    """The reviews that validate are those of the seeded random split IMDB has always had."""
    from seqmodels.data import imdb

    config = validate(ClassificationData, {"dataset": "imdb", "root": str(data_root)}, "data")
    splits, names, _ = read_splits(config, locate(config))
    reviews = imdb.read(imdb.locate(data_root, allow_download=False))
    _, val_index = seeded_split(48, 0.1, 1234)
    assert splits["val"].texts == [reviews["train"].texts[i] for i in val_index.tolist()]
    assert names == ["negative", "positive"]


# -- metrics ---------------------------------------------------------------------------------------------------
def test_single_label_scores_from_the_confusion_matrix():
    confusion = torch.tensor([[3, 1, 0], [0, 2, 2], [0, 0, 0]])  # gold rows, predicted columns
    counts = single_label_counts(confusion, unseen_predicted=torch.tensor([0, 0, 1]))
    scores = per_label(counts, ["a", "b c", "d"])
    assert scores["precision_a"] == 1.0 and scores["recall_a"] == 0.75
    assert scores["f1_b_c"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert scores["precision_d"] == 0.0 and scores["f1_d"] == 0.0  # predicted 3 times, never right
    # every label occurs (d among the predictions): the mean of three F1s
    assert counts.macro_f1() == pytest.approx((6 / 7 + 4 / 7 + 0.0) / 3)
    assert LabelCounts(torch.tensor([1, 0]), torch.tensor([1, 0]), torch.tensor([1, 0])).macro_f1() == 1.0


# -- whole runs ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ticket_run(tmp_path_factory):
    """A run on a CSV of three labels with a validation file and no test file."""
    folder = tmp_path_factory.mktemp("tickets")
    train = write_csv(folder / "tickets_train.csv", tickets(90))
    val = write_csv(folder / "tickets_val.csv", tickets(15, seed=1))
    overrides = [f"data.train={train}", f"data.val={val}", "trainer.max_epochs=2", "trainer.monitor=macro_f1"]
    overrides += ["data.text_column=[title,text]"]
    cfg = composed("task=classification", *TINY, *overrides, f"data.cache_dir={folder / 'cache'}", "data.min_freq=1")
    with logging_to(logging.FileHandler(folder / "log.txt")):  # train.py's train.log
        train_run(cfg, folder / "run")
    return folder / "run"


def test_a_run_without_a_test_file_reports_validation_with_every_label(ticket_run):
    metrics = json.loads((ticket_run / "metrics.json").read_text())
    assert "test" not in metrics and metrics["monitor"] == "val/macro_f1" and metrics["mode"] == "max"
    assert {"accuracy", "macro_f1", "loss", "f1_billing", "precision_shipping", "recall_account"} <= set(metrics["val"])
    assert metrics["hparams"]["labels"] == 3 and metrics["hparams"]["dataset"] == "files"
    assert metrics["hparams"]["train"].endswith("tickets_train.csv")
    log = (ticket_run.parent / "log.txt").read_text()
    assert "data.train" in log and "CSV with a header (id, title, text, label)" in log
    assert "no data.test: the run reports validation metrics only" in log
    assert "val per label:" in log and "support" in log


def test_labels_come_back_from_load_run_and_the_onnx_sidecar(ticket_run, tmp_path):
    run = load_run(ticket_run)
    answer = run.predict("my invoice was charged twice, refund the payment")
    assert answer["label"] in ("account", "billing", "shipping")
    assert set(answer["probabilities"]) == {"account", "billing", "shipping"}
    assert run.artifacts["labels"] == ["account", "billing", "shipping"]
    from seqmodels.inference.export import export_onnx

    sidecar = export_onnx(run.task, run.model, run.artifacts, tmp_path / "model.onnx")
    assert sidecar["labels"] == ["account", "billing", "shipping"] and "multi_label" not in sidecar


def test_the_confusion_matrix_is_a_validation_figure(ticket_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(ticket_run), size_guidance={"images": 0})
    accumulator.Reload()
    images = accumulator.Images("val_examples/confusion_matrix")
    assert len(images) == 2 and images[0].width > 100  # one per validation


def test_multi_label_runs_use_sigmoid_outputs_a_threshold_and_micro_f1(tmp_path):
    rows = []
    for i, (text, label) in enumerate(tickets(80)):
        labels = [label] if i % 4 else [label, "urgent"]
        rows.append({"text": text + (" asap now" if "urgent" in labels else ""), "label": labels})
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    cfg = composed(
        "task=classification",
        *TINY,
        f"data.train={train}",
        "data.threshold=0.4",
        "trainer.monitor=micro_f1",
        "data.class_weights=balanced",
        f"data.cache_dir={tmp_path / 'cache'}",
    )
    train_run(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "micro_f1", "f1_urgent"} <= set(metrics["val"])
    run = load_run(tmp_path / "run")
    answer = run.predict("refund asap now")
    assert set(answer) == {"labels", "probabilities"} and len(answer["probabilities"]) == 4
    assert answer["labels"] == [name for name, p in answer["probabilities"].items() if p >= 0.4]
    assert run.predict("") == {"labels": None, "probabilities": {}}


def test_monitor_names_a_metric_of_the_task(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.monitor=bleu is not a metric of imdb runs; use one of accuracy"):
        check_config(composed("task=imdb", "trainer.monitor=bleu"))
    train = write_csv(tmp_path / "train.csv", tickets(30))
    overrides = [f"data.train={train}", "trainer.monitor=micro_f1", f"data.cache_dir={tmp_path / 'cache'}"]
    task = check_config(composed("task=classification", *overrides))
    with pytest.raises(ConfigError, match=r"trainer.monitor=micro_f1 scores multi-label data"):
        task.prepare()


def test_balanced_class_weights_weigh_rare_labels_up(tmp_path):
    train = write_csv(tmp_path / "train.csv", tickets(40) + tickets(20, labels=("billing",)))
    task, data = prepared(tmp_path, f"data.train={train}", "data.class_weights=balanced")
    counts = torch.cat([batch.labels for batch in data.train]).bincount().tolist()
    assert task.weights is not None
    expected = [sum(counts) / (3 * count) for count in counts]
    assert task.weights.tolist() == pytest.approx(expected) and task.weights[1] < task.weights[0]


def test_two_runs_on_different_files_are_told_apart_in_their_hparams(tmp_path):
    first = write_csv(tmp_path / "a" / "tickets.csv", tickets(30))
    second = write_csv(tmp_path / "b" / "reviews.csv", tickets(30, seed=2))
    hparams = [prepared(tmp_path / name, f"data.train={path}")[0] for name, path in (("a", first), ("b", second))]
    assert [task.hparams()["train"] for task in hparams] == [str(first), str(second)]


# -- SST -----------------------------------------------------------------------------------------------------------
def test_sst_trees_give_sentences_and_every_phrase(tmp_path):
    folder = write_sst(tmp_path / "sst")
    trees = sst.read(sst.locate(tmp_path, allow_download=False))
    assert [len(trees[split]) for split in ("train", "val", "test")] == [60, 15, 15]
    tree = trees["train"][0]
    assert tree.sentence == tree.phrases[-1] and tree.sentence.label == 0
    assert len(tree.phrases) == 2 * len(tree.sentence.words) - 1
    with pytest.raises(DataError, match=r"train.txt:2: not an SST tree"):
        sst.read_trees(b"(2 (2 a) (2 b))\n(2 (2 a) (7 b))\n", f"{folder}/train.txt")
    with pytest.raises(DataError, match=r"SST not found in .*sst: put trainDevTestTrees_PTB.zip \(from https://nlp"):
        sst.locate(tmp_path / "elsewhere", allow_download=False)


def test_the_sst5_preset_trains_on_phrases_and_validates_on_sentences(tmp_path):
    write_sst(tmp_path / "root" / "sst")
    task = check_config(composed("task=sst5", *TINY, f"data.root={tmp_path / 'root'}", f"data.cache_dir={tmp_path}"))
    data = task.prepare()
    assert data.artifacts["labels"] == list(sst.LABELS)
    assert data.summary["train examples"] > 60 and data.summary["val examples"] == 15
    assert data.summary["training phrases"].endswith("of 60 trees")


def test_the_sst_archive_is_read_in_place(tmp_path):
    import zipfile

    folder = write_sst(tmp_path / "trees")
    (tmp_path / "root" / "sst").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "root" / "sst" / sst.ARCHIVE, "w") as archive:
        for name in sst.FILES.values():
            archive.write(folder / name, f"trees/{name}")
    source = sst.locate(tmp_path / "root", allow_download=False)
    assert source.name == sst.ARCHIVE and len(sst.read(source)["test"]) == 15
    shutil.rmtree(folder)


# -- runs saved before classification replaced sentiment ---------------------------------------------------
OLD_DATA_KEYS = ("root", "cache_dir", "download", "batch_size", "dataset", "vocab_size", "min_freq", "max_length")
OLD_DATA_KEYS += ("keep", "lowercase", "val_fraction", "split_seed")  # SentimentData's, all a saved run has


def saved_as_sentiment(checkpoint: Path) -> None:
    """Rewrite a checkpoint as the sentiment task wrote it: task.kind sentiment and its data.* keys only (its
    artifacts, tokenizer, labels and vocab_size, are the ones a single-label classifier saves)."""
    state = torch.load(checkpoint, weights_only=True)
    state["config"]["task"]["kind"] = "sentiment"
    state["config"]["data"] = {key: state["config"]["data"][key] for key in OLD_DATA_KEYS}
    assert set(state["artifacts"]) == {"tokenizer", "labels", "vocab_size"}
    torch.save(state, checkpoint)


def test_a_run_saved_as_sentiment_predicts_evaluates_and_resumes(data_root, tmp_path):
    overrides = ["task=imdb", *TINY, f"data.root={data_root}", f"data.cache_dir={tmp_path / 'cache'}"]
    train_run(composed(*overrides), tmp_path / "first")
    answer = load_run(tmp_path / "first").predict("a wonderful moving film")
    for name in ("best.pt", "last.pt"):
        saved_as_sentiment(tmp_path / "first" / "checkpoints" / name)
    run = load_run(tmp_path / "first")
    assert run.cfg.task.kind == "sentiment" and type(run.task).__name__ == "ClassificationTask"
    assert run.predict("a wonderful moving film") == answer
    from seqmodels.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(run)
    assert 0 <= report["test"]["accuracy"] <= 1
    resumed = train_run(
        composed(*overrides, "trainer.max_epochs=2", f"trainer.resume={tmp_path / 'first'}"), tmp_path / "second"
    )
    assert resumed["epochs_run"] == 2 and resumed["status"] == "completed"


# -- predict on the same formats -------------------------------------------------------------------------------
def test_predict_writes_a_csv_back_with_the_label_and_probabilities_added(ticket_run, tmp_path, capsys):
    from seqmodels.predict import main

    source = tmp_path / "new.csv"
    source.write_text('id,title,text,label\n7,Refund,"my invoice, charged\ntwice",\n8,,,\n', encoding="utf-8")
    assert main([str(ticket_run), "--input", str(source), "--output", str(tmp_path / "out.csv"), "--quiet"]) == 0
    import csv

    rows = list(csv.reader((tmp_path / "out.csv").open(newline="", encoding="utf-8")))
    labels = ["account", "billing", "shipping"]
    assert rows[0] == ["id", "title", "text", "label", "predicted_label", "probability"] + [
        f"probability_{label}" for label in labels
    ]
    assert rows[1][:4] == ["7", "Refund", "my invoice, charged\ntwice", ""] and rows[1][4] in labels
    assert sum(float(p) for p in rows[1][6:]) == pytest.approx(1.0, abs=1e-3)
    assert rows[2][4:] == [""] * 5  # an empty text: no answer, in its place
    answer = load_run(ticket_run).predict("Refund\nmy invoice, charged\ntwice")
    assert rows[1][4] == answer["label"] and float(rows[1][5]) == answer["probability"]


def test_predict_reads_json_lines_by_the_runs_keys_and_fasttext_lines(ticket_run, tmp_path, capsys):
    from seqmodels.predict import main

    jsonl = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "title": "Login", "text": "password locked"}])
    assert main([str(ticket_run), "--input", str(jsonl), "--quiet"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["id"] == 1 and record["label"] == load_run(ticket_run).predict("Login\npassword locked")["label"]
    fasttext = write_fasttext(tmp_path / "in.txt", [("password locked", "account")])
    assert main([str(ticket_run), "--input", str(fasttext), "--quiet"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (
        record["text"] == "password locked"
        and record["label"] == load_run(ticket_run).predict("password locked")["label"]
    )
    plain = tmp_path / "in.plain"
    plain.write_text("password locked, again\n", encoding="utf-8")
    assert main([str(ticket_run), "--input", str(plain), "--quiet"]) == 0  # one text per line, commas and all
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["text"] == "password locked, again"


def test_predict_on_a_csv_without_the_runs_text_column_lists_the_columns(ticket_run, tmp_path, capsys):
    from seqmodels.predict import main

    source = tmp_path / "new.csv"
    source.write_text("body\nrefund please\n", encoding="utf-8")
    assert main([str(ticket_run), "--input", str(source)]) == 2
    expected = f"error: {source}: no column 'title' (data.text_column); the header has: body"
    assert capsys.readouterr().err.strip() == expected


def test_compare_shows_each_runs_data_file_and_label_count(tmp_path):
    from seqmodels.compare import load_runs, markdown_table

    for name, train, labels in (("a", "/data/tickets.csv", 3), ("b", "/data/reviews.tsv", 5)):
        (tmp_path / name).mkdir()
        metrics = {
            "status": "completed",
            "task": "classification",
            "monitor": "val/accuracy",
            "hparams": {"dataset": "files", "train": train, "labels": labels},
            "val": {"accuracy": 0.5},
        }
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    table = markdown_table(load_runs([tmp_path / "a", tmp_path / "b"])).splitlines()
    assert table[0].startswith("| run | status | data | model |")
    assert "| tickets.csv, 3 labels |" in table[2] and "| reviews.tsv, 5 labels |" in table[3]


def test_predict_answers_every_file_of_a_folder_with_its_path(ticket_run, tmp_path, capsys):
    from seqmodels.predict import main

    write_folders(tmp_path / "inbox", [("password locked", "new"), ("refund my invoice", "old")])
    (tmp_path / "inbox" / "loose.txt").write_text("parcel not delivered", encoding="utf-8")
    assert main([str(ticket_run), "--input", str(tmp_path / "inbox"), "--quiet"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["file"] for record in records] == ["loose.txt", "new/0.txt", "old/1.txt"]
    run = load_run(ticket_run)
    assert [record["label"] for record in records] == [
        run.predict(text)["label"] for text in ("parcel not delivered", "password locked", "refund my invoice")
    ]


def test_a_label_seen_only_in_validation_is_never_shown_as_an_example(tmp_path):
    train = write_csv(tmp_path / "train.csv", tickets(30))
    val = write_csv(tmp_path / "val.csv", [("Cancel my subscription", "cancel")] * 3 + tickets(6, seed=1))
    task, data = prepared(tmp_path, f"data.train={train}", f"data.val={val}")
    model = task.build_model(data.artifacts)
    table = task.examples(model, data.artifacts)["reviews"]
    assert "cancel" not in table and len(table.splitlines()) == 2 + 4  # header, rule, four texts
