"""Prediction on files and from Python: batched answers equal one-at-a-time answers in the input's order,
the Python API, the input formats (text, JSON Lines, CoNLL), conlleval on the CoNLL output equals
evaluate.py's F1, and every bad input is one clear line with no partial output."""

from __future__ import annotations

import io
import json
import sys

import pytest
import torch

from conftest import ROOT, TINY, run_script
from helpers.conlleval import conlleval
from seqmodels import load_run
from seqmodels.config import compose_config
from seqmodels.data import tag_schemes
from seqmodels.data.tag_schemes import to_iob1
from seqmodels.errors import DataError
from seqmodels.evaluate import evaluate_checkpoint
from seqmodels.inference.prediction_io import read_input
from seqmodels.predict import main
from seqmodels.train import run as train_run

REVIEWS = [
    "A wonderful, moving film. Loved it.",
    "Awful and boring; the worst plot.",
    "",
    "dull",
    "The story was superb and the actor brilliant, a beautiful and touching film of great scenes.",
]


@pytest.fixture(scope="module")
def runs(data_root, tmp_path_factory):
    """preset -> a run directory trained in-process for one short epoch on the fixture data."""
    made = {}

    def get(preset: str, *overrides: str):
        key = (preset, *overrides)
        if key not in made:
            folder = tmp_path_factory.mktemp(preset)
            cfg = compose_config(
                [
                    f"task={preset}",
                    *TINY,
                    *overrides,
                    f"data.root={data_root}",
                    f"data.cache_dir={folder / 'cache'}",
                    "trainer.log_every_n_steps=100",
                ]
            )
            train_run(cfg, folder / "run")
            made[key] = folder / "run"
        return made[key]

    return get


def predict_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


# -- the Python API -------------------------------------------------------------------------------
def test_load_run_answers_a_list_as_it_answers_each_text_in_order(runs):
    run = load_run(runs("imdb"))
    answers = run.predict(REVIEWS, batch_size=2)
    assert len(answers) == len(REVIEWS)
    for text, answer in zip(REVIEWS, answers):
        alone = run.predict(text)
        assert answer["label"] == alone["label"]
        for label, probability in alone["probabilities"].items():
            assert answer["probabilities"][label] == pytest.approx(probability, abs=2e-4)
    assert answers[2] == {"label": None, "probability": None, "probabilities": {}}  # the empty review, in place
    assert answers[0]["label"] in ("negative", "positive")


def test_load_run_says_what_it_is_and_how_good_it_was(runs):
    run = load_run(runs("imdb"))
    assert run.task.cfg.task.kind == "classification" and run.config.task.name == "imdb"
    assert run.metrics == json.loads((runs("imdb") / "metrics.json").read_text())
    assert 0 <= run.metrics["test"]["accuracy"] <= 1
    assert "imdb run (classification)" in repr(run)


def test_a_text_of_100000_tokens_is_cut_to_max_length_and_counted(runs):
    run = load_run(runs("imdb"))
    answers, throughput = run.predict_texts(["great " * 100_000, "dull"])
    assert answers[0]["label"] in ("negative", "positive")
    assert throughput.cut == 1 and throughput.tokens == run.cfg.data.max_length + 1
    assert "1 cut to data.max_length" in throughput.summary()


def test_a_tagger_tags_texts_in_batches_as_one_by_one(runs):
    run = load_run(runs("conll2003"))
    texts = ["Harry Potter met Hermione Granger in London.", "", "The European Commission of Paris won."]
    answers = run.predict(texts, batch_size=2)
    assert answers == [run.predict(text) for text in texts]
    assert answers[1] == {"tokens": [], "tags": [], "entities": []}
    assert answers[0]["tokens"][:3] == ["Harry", "Potter", "met"] and len(answers[0]["tags"]) == 8


def test_language_model_continues_each_prompt_as_it_would_alone(runs):
    run = load_run(runs("ptb"))
    prompts = ["the cat sat on", "investors", "", "the company said it sold", "a dog"]
    answers = run.predict(prompts, batch_size=3, seed=3, length=6, top_k=4)
    for prompt, answer in zip(prompts, answers):
        alone = run.predict(prompt, seed=3, length=6, top_k=4)
        assert answer["continuation"] == alone["continuation"] and answer["text"] == prompt
        assert [n["token"] for n in answer["next"]] == [n["token"] for n in alone["next"]]
    assert len(answers[0]["continuation"].split()) == 6 and len(answers[0]["next"]) == 4


def test_translation_decodes_a_batch_as_one_sentence_at_a_time(tmp_path):
    from helpers.parallel_text import translation_task, write_multi30k

    task = translation_task(write_multi30k(tmp_path / "data"), tmp_path / "cache", "data.max_length=40")
    data = task.prepare()
    torch.manual_seed(0)
    model = task.build_model(data.artifacts).eval()
    texts = ["Ein Mann fährt Fahrrad.", "", "Zwei Hunde spielen im Schnee.", "ein Mann " * 20]
    answers = task.predict_batch(model, data.artifacts, texts, beam_size=2)
    assert answers.results == [task.predict(model, data.artifacts, text, beam_size=2) for text in texts]
    assert answers.results[1] == {"translation": "", "beam_size": 2}
    assert answers.cut == 1 and answers.tokens <= 3 * 40  # the short ones have at most one piece per character


# -- files ---------------------------------------------------------------------------------------
def test_a_text_file_becomes_json_lines_in_order(runs, tmp_path, capsys):
    source = tmp_path / "reviews.txt"
    source.write_text("\n".join(REVIEWS) + "\n", encoding="utf-8")
    output = tmp_path / "out" / "predictions.jsonl"
    code, _, err = predict_cli(capsys, runs("imdb"), "--input", source, "--output", output, "--batch-size", 2)
    assert code == 0
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["text"] for line in lines] == REVIEWS
    assert [line["label"] for line in lines] == [a["label"] for a in load_run(runs("imdb")).predict(REVIEWS)]
    assert "5 texts" in err and "texts/s" in err and "tokens/s" in err


def test_json_lines_keep_their_fields_and_a_clashing_one_is_renamed(runs, tmp_path, capsys):
    source = tmp_path / "reviews.jsonl"
    rows = [{"text": "A wonderful film", "id": 7, "label": "gold"}, {"text": "dull", "id": 8}]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, out, _ = predict_cli(capsys, runs("imdb"), "--input", source, "--quiet")
    assert code == 0
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["id"] == 7 and first["input_label"] == "gold" and first["label"] in ("negative", "positive")
    assert second["id"] == 8 and "input_label" not in second


def test_standard_input_in_standard_output_out(runs, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a wonderful film\ndull\n")))
    code, out, _ = predict_cli(capsys, runs("imdb"), "--input", "-", "-q")
    assert code == 0 and [json.loads(line)["text"] for line in out.splitlines()] == ["a wonderful film", "dull"]


# a few epochs, so that the tagger finds some entities and the F1 compared is not 0 on both sides
LEARNED = ["trainer.max_epochs=4", "optim.lr=0.02"]


def test_conll_output_scores_as_evaluate_py_with_conlleval(runs, data_root, tmp_path, capsys):
    run_dir = runs("conll2003", "model.crf=true", "model.bidirectional=true", "model.char_dim=4", *LEARNED)
    output = tmp_path / "testb.pred.conll"
    source = data_root / "conll2003" / "eng.testb"
    code, _, err = predict_cli(capsys, run_dir, "--input", source, "--output", output, "--batch-size", 5)
    assert code == 0 and "sentences" in err
    lines, given = output.read_text().splitlines(), source.read_text().splitlines()
    assert len(lines) == len(given)
    assert all(line.startswith(original) for line, original in zip(lines, given) if original)
    assert lines[0] == "-DOCSTART- -X- -X- O O"
    scores = conlleval(output)
    expected = evaluate_checkpoint(load_run(run_dir, data_root=data_root))["test"]
    assert scores["f1"] == pytest.approx(expected["f1"], abs=1e-12) and expected["f1"] > 0
    assert scores["precision"] == pytest.approx(expected["precision"], abs=1e-12)


def test_document_context_runs_tag_conll_files_as_evaluation_reads_them(runs, data_root, tmp_path, capsys):
    run_dir = runs("conll2003", "model.bidirectional=true", "data.context_tokens=40", *LEARNED)
    output = tmp_path / "testb.pred.conll"
    assert predict_cli(capsys, run_dir, "--input", data_root / "conll2003" / "eng.testb", "-o", output, "-q")[0] == 0
    expected = evaluate_checkpoint(load_run(run_dir, data_root=data_root))["test"]["f1"]
    assert conlleval(output)["f1"] == pytest.approx(expected, abs=1e-12) and expected > 0


def test_conll_output_in_iob1_holds_the_same_entities(runs, data_root, tmp_path, capsys):
    run_dir = runs("conll2003")
    outputs = {}
    for scheme in ("iob2", "iob1"):
        outputs[scheme] = tmp_path / f"{scheme}.conll"
        args = ["--input", data_root / "conll2003" / "eng.testa", "-o", outputs[scheme], "-q", "--tag-scheme", scheme]
        assert predict_cli(capsys, run_dir, *args)[0] == 0
    assert conlleval(outputs["iob1"]) == conlleval(outputs["iob2"])


@pytest.mark.parametrize(
    "tags",
    [["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG"], ["O", "B-MISC"], []],
)
def test_iob1_conversion_round_trips(tags):
    assert tag_schemes.to_iob2(to_iob1(tags)) == tags
    assert to_iob1(["B-PER", "I-PER", "B-PER", "B-LOC"]) == ["I-PER", "I-PER", "B-PER", "I-LOC"]


def test_plain_word_columns_are_read_too(runs, tmp_path, capsys):
    source = tmp_path / "words.txt"
    source.write_text("Harry\nPotter\nmet\nRon\n\nLondon\n.\n")
    code, out, _ = predict_cli(capsys, runs("conll2003"), "--input", source, "-q")
    assert code == 0
    rows = out.split("\n")
    assert [row.split()[0] for row in rows if row] == ["Harry", "Potter", "met", "Ron", "London", "."]
    assert rows[4] == "" and all(len(row.split()) == 2 for row in rows if row)


# -- bad input ------------------------------------------------------------------------------------
def test_an_empty_file_gives_an_empty_output_and_a_note(runs, tmp_path, capsys):
    source, output = tmp_path / "empty.txt", tmp_path / "out.jsonl"
    source.write_text("")
    code, _, err = predict_cli(capsys, runs("imdb"), "--input", source, "--output", output)
    assert code == 0 and output.read_text() == ""
    assert err == f"note: {source} is empty: wrote nothing to {output}\n"


def test_a_malformed_conll_line_names_file_and_line(runs, tmp_path, capsys):
    source = tmp_path / "bad.conll"
    source.write_text("-DOCSTART- -X- -X- O\n\nHarry NNP I-NP I-PER\nPotter NNP I-PER\n")
    code, _, err = predict_cli(capsys, runs("conll2003"), "--input", source, "-q")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {source}:4: 3 columns where line 3 has 4")


def test_a_conll_file_for_a_sentiment_run_says_what_the_run_reads(runs, data_root, capsys, tmp_path):
    output = tmp_path / "out.jsonl"
    code, _, err = predict_cli(capsys, runs("imdb"), "--input", data_root / "conll2003" / "eng.testa", "-o", output)
    assert code == 2 and err.count("\n") == 1 and not output.exists()
    assert "(imdb, classification) reads texts (one per line" in err and "looks like a CoNLL file" in err


def test_a_text_file_for_a_tagger_says_what_the_run_reads(runs, tmp_path, capsys):
    source = tmp_path / "news.txt"
    source.write_text("Harry Potter met Hermione in London.\nThe European Commission said so on Friday.\n")
    code, _, err = predict_cli(capsys, runs("conll2003"), "--input", source, "-q")
    assert code == 2 and err.count("\n") == 1
    assert "is a tagger and reads CoNLL files" in err and "--format text" in err
    code, out, _ = predict_cli(capsys, runs("conll2003"), "--input", source, "-q", "--format", "text")
    assert code == 0 and json.loads(out.splitlines()[0])["tokens"][0] == "Harry"


def test_a_json_line_without_text_names_file_and_line(tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text('{"text": "fine"}\n{"review": "no text field"}\n')
    with pytest.raises(DataError, match=rf"^{source}:2: expected an object with a \"text\" string"):
        read_input(str(source))


@pytest.mark.parametrize("where", ["a_file/out.jsonl", "a_folder"])
def test_an_unwritable_output_is_one_line_and_leaves_no_file(runs, tmp_path, capsys, where):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "a_folder").mkdir()
    source = tmp_path / "reviews.txt"
    source.write_text("a wonderful film\n")
    before = sorted(tmp_path.rglob("*"))
    code, out, err = predict_cli(capsys, runs("imdb"), "--input", source, "--output", tmp_path / where)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: cannot write --output {tmp_path / where} (") and "nothing was written" in err
    assert sorted(tmp_path.rglob("*")) == before


def test_a_failure_while_predicting_leaves_no_partial_output(runs, tmp_path, capsys, monkeypatch):
    source, output = tmp_path / "reviews.txt", tmp_path / "out.jsonl"
    source.write_text("a wonderful film\ndull\n")

    def broken(*args, **kwargs):
        raise DataError("the model broke")

    monkeypatch.setattr("seqmodels.tasks.classification.ClassificationTask.predict_batch", broken)
    code, _, err = predict_cli(capsys, runs("imdb"), "--input", source, "--output", output)
    assert code == 2 and err.endswith("\nerror: the model broke\n")  # after the progress bar
    assert sorted(path.name for path in tmp_path.iterdir()) == ["reviews.txt"]


def test_text_and_input_together_are_refused(runs, capsys):
    with pytest.raises(SystemExit):
        main([str(runs("imdb")), "a text", "--input", "x.txt"])
    assert "give either a TEXT or --input FILE" in capsys.readouterr().err


# -- the command line, end to end -----------------------------------------------------------------
@pytest.mark.slow
def test_predict_script_reads_a_pipe_and_writes_a_file(runs, tmp_path, env):
    torch.set_num_threads(1)
    output = tmp_path / "predictions.jsonl"
    result = run_script(
        [
            "-c",
            "import subprocess, sys; "
            f"sys.exit(subprocess.run([sys.executable, {str(ROOT / 'scripts' / 'predict.py')!r}, "
            f"{str(runs('imdb'))!r}, '--input', '-', '--output', {str(output)!r}], "
            "input=b'a wonderful film\\n\\ndull\\n').returncode)",
        ],
        env,
    )
    assert [json.loads(line)["text"] for line in output.read_text().splitlines()] == ["a wonderful film", "", "dull"]
    assert "3 texts" in result.stderr and "tokens/s" in result.stderr


@pytest.mark.parametrize("spelling", ["same path", "dot slash", "symlink", "hard link"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(runs, tmp_path, capsys, monkeypatch, spelling):
    source = tmp_path / "reviews.txt"
    source.write_text("a wonderful film\ndull\n")
    monkeypatch.chdir(tmp_path)
    output = {
        "same path": str(source),
        "dot slash": "./reviews.txt",
        "symlink": "link.txt",
        "hard link": "hard.txt",
    }[spelling]
    if spelling == "symlink":
        (tmp_path / "link.txt").symlink_to(source)
    if spelling == "hard link":
        (tmp_path / "hard.txt").hardlink_to(source)
    before = {path.name: (path.is_symlink(), path.read_bytes()) for path in tmp_path.iterdir()}
    code, out, err = predict_cli(capsys, runs("imdb"), "--input", source, "--output", output)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err == (
        f"error: --output {output} is the --input file {source}; write the predictions to another file "
        f"(nothing was written, the input is as it was)\n"
    )
    assert {path.name: (path.is_symlink(), path.read_bytes()) for path in tmp_path.iterdir()} == before


def test_an_output_symlink_to_another_file_stays_a_link(runs, tmp_path, capsys):
    source, target, link = tmp_path / "reviews.txt", tmp_path / "answers.jsonl", tmp_path / "latest.jsonl"
    source.write_text("a wonderful film\n")
    link.symlink_to(target)
    code, _, _ = predict_cli(capsys, runs("imdb"), "--input", source, "--output", link, "-q")
    assert code == 0 and link.is_symlink() and json.loads(target.read_text())["text"] == "a wonderful film"


def test_one_bad_byte_is_refused_with_its_line_not_a_whole_file_guess(runs, tmp_path, capsys):
    source, output = tmp_path / "reviews.txt", tmp_path / "out.jsonl"
    source.write_bytes("Müller was wonderful\n".encode() + b"dull \xff film\n" + "Café, superb\n".encode())
    code, out, err = predict_cli(capsys, runs("imdb"), "--input", source, "--output", output)
    assert code == 2 and out == "" and not output.exists()
    assert err == (
        f"error: {source}:2: byte 6 (0xff) is not utf-8; name the file's encoding with --encoding=ENCODING "
        f"(e.g. latin-1), convert the file (iconv -f ENCODING -t utf-8), or read on with --encoding-errors=replace\n"
    )


def test_encoding_errors_replace_reads_on_and_keeps_every_other_character(runs, tmp_path, capsys, caplog):
    source, output = tmp_path / "reviews.txt", tmp_path / "out.jsonl"
    source.write_bytes("Müller was wonderful\n".encode() + b"dull \xff film\n" + "Café, superb\n".encode())
    code, _, _ = predict_cli(
        capsys, runs("imdb"), "--input", source, "--output", output, "--encoding-errors", "replace", "-q"
    )
    texts = [json.loads(line)["text"] for line in output.read_text(encoding="utf-8").splitlines()]
    assert code == 0 and texts == ["Müller was wonderful", "dull \ufffd film", "Café, superb"]
    assert f"{source}: 1 byte(s) are not utf-8 and were replaced by U+FFFD (--encoding-errors=replace)" in caplog.text


def test_a_named_encoding_reads_a_latin1_file(runs, tmp_path, capsys):
    source = tmp_path / "reviews.txt"
    source.write_bytes("Müller was wonderful\n".encode("latin-1"))
    code, out, _ = predict_cli(capsys, runs("imdb"), "--input", source, "--encoding", "latin-1", "-q")
    assert code == 0 and json.loads(out)["text"] == "Müller was wonderful"
    code, _, err = predict_cli(capsys, runs("imdb"), "--input", source, "--encoding", "klingon", "-q")
    assert code == 2 and err == (
        "error: --encoding=klingon is not an encoding Python knows; use e.g. utf-8, latin-1, cp1252\n"
    )
