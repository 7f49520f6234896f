"""`python scripts/predict.py RUN_DIR TEXT [options]`: the best checkpoint of a run answers a text as JSON.
`python scripts/predict.py RUN_DIR --input FILE|- [--output FILE]`: it answers a whole file, in batches.

Input files: plain text (one text per line), JSON Lines ({"text": ...} plus any fields, which are kept),
for classifiers also CSV, TSV and fastText lines (the text where the run's data.text_column says), or, for
taggers, CoNLL columns (one word per line, blank lines between sentences) or CoNLL-U. Output: JSON Lines,
one line per input line in the same order; for a CSV or TSV, the input with the predicted label and the
probabilities as added columns; for CoNLL, the input's lines with the predicted
tag as the last column (IOB2 spans, or the input's IOB1 with --tag-scheme iob1), which conlleval reads
as it is; for CoNLL-U, the input with the prediction in its UPOS (or XPOS) field.

Each task declares its own options (e.g. sampling for language models, beams for translation); they
reach the task only when given, so each task keeps its own defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seqmodels.atomic import AtomicOutput
from seqmodels.data.classification import ClassifierArtifacts
from seqmodels.data.encoding import ERROR_MODES, TextEncoding
from seqmodels.data.tag_schemes import tag_set_scheme, to_iob1
from seqmodels.data.tagging import TaggingArtifacts
from seqmodels.errors import ConfigError, SeqmodelsError
from seqmodels.inference.labelled_files import table_output
from seqmodels.inference.loading import LoadedRun, TaskOptions, load_run
from seqmodels.inference.prediction_io import (
    FORMATS,
    TAGGED,
    check_output_is_not_input,
    conll_output,
    input_encoding,
    jsonl_output,
    read_input,
)
from seqmodels.training.runtime import set_threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run directory (outputs/TASK/MODEL/DATE_TIME) or a checkpoint file")
    parser.add_argument(
        "text",
        nargs="?",
        help="the text to answer: a review, a sentence, the start of a text; "
        "- reads it from standard input (for long texts)",
    )
    parser.add_argument("--input", "-i", help="a file of texts (or a CoNLL file for a tagger); - reads standard input")
    parser.add_argument("--output", "-o", default="-", help="where --input's answers go (default: standard output)")
    parser.add_argument(
        "--format", choices=FORMATS, default="auto", help="--input's format (default: from its name and first lines)"
    )
    parser.add_argument(
        "--encoding", default="utf-8", help="--input's encoding (default utf-8; e.g. latin-1 for CoNLL-2003's files)"
    )
    parser.add_argument(
        "--encoding-errors",
        choices=ERROR_MODES,
        default="strict",
        help="strict (default): refuse a byte that does not decode, naming its line | replace: read it as U+FFFD "
        "and count such bytes in a warning",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="texts per batch (default 64)")
    parser.add_argument(
        "--tag-scheme",
        choices=("iob2", "iob1"),
        default="iob2",
        help="CoNLL output: IOB2 tags (default), or IOB1 as in CoNLL-2003's own files",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no closing line")
    parser.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's, one per core)")
    task_options = TaskOptions.add_to(parser, "predict")
    args = parser.parse_args(argv)
    if (args.text is None) == (args.input is None):
        parser.error("give either a TEXT or --input FILE")
    try:
        if args.batch_size < 1:
            raise ConfigError(f"--batch-size {args.batch_size} must be at least 1")
        if args.threads is not None and args.threads < 1:
            raise ConfigError(f"--threads {args.threads} must be at least 1")
        set_threads(args.threads)
        encoding = input_encoding(args.encoding, args.encoding_errors)
        if args.input is not None:
            check_output_is_not_input(args.input, args.output)
        output = AtomicOutput(args.output) if args.input is not None else None
        try:
            run = load_run(args.run, args.checkpoint, args.device)
            options = task_options.given(args, run.cfg.task.kind)
            if output is None:
                text = sys.stdin.read() if args.text == "-" else args.text
                print(json.dumps(run.predict(text, **options), ensure_ascii=False))
                return 0
            predict_file(run, args, options, output, encoding)
        finally:
            if output is not None:
                output.discard()
    except SeqmodelsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def predict_file(
    run: LoadedRun, args: argparse.Namespace, options: dict, output: AtomicOutput, encoding: TextEncoding
) -> None:
    what = f"this run ({run.cfg.task.name}, {run.cfg.task.kind})"
    columns = run.task.text_columns()
    source = read_input(
        args.input, args.format, tagger=run.task.reads_conll, what=what, encoding=encoding, columns=columns
    )
    if source.format in TAGGED and args.format in TAGGED and not run.task.reads_conll:
        raise ConfigError(f"{what} reads texts, not CoNLL columns; give it one text per line or JSON Lines")
    progress = not args.quiet and source.count > 0
    if source.format in TAGGED:
        scheme = tag_set_scheme(TaggingArtifacts.from_dict(run.artifacts).tags)  # only taggers read CoNLL columns
        if args.tag_scheme == "iob1" and scheme != "IOB2":
            raise ConfigError(
                f"--tag-scheme iob1 rewrites IOB2 spans, but {what} tags {scheme or 'without spans'}; leave it out"
            )
        tags, throughput = run.tag_sentences(source.sentences, batch_size=args.batch_size, progress=progress)
        if args.tag_scheme == "iob1":
            tags = [to_iob1(sentence) for sentence in tags]
        learned = run.cfg.data.get("tag_column")  # a CoNLL-U input gets the prediction in that field
        text = conll_output(source, tags, learned.lower() if isinstance(learned, str) else "upos")
    else:
        answers, throughput = run.predict_texts(source.texts, batch_size=args.batch_size, progress=progress, **options)
        if source.table is not None and source.format in ("csv", "tsv"):
            separator = run.cfg.data.get("label_separator")
            labels = ClassifierArtifacts.from_dict(run.artifacts).labels  # only classifiers read tables
            text = table_output(source.table, answers, labels, separator)
        else:
            text = jsonl_output(source, answers)
    output.commit(text)
    destination = "standard output" if args.output == "-" else args.output
    if not source.count and not source.lines:
        print(f"note: {source.name} is empty: wrote nothing to {destination}", file=sys.stderr)
    elif not args.quiet:
        print(f"{throughput.summary()} -> {destination}", file=sys.stderr)
