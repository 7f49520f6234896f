"""`python scripts/predict.py RUN_DIR TEXT [options]`: the best checkpoint of a run answers a text as JSON.

Each task declares its own options (e.g. sampling for language models); they reach the task only
when given, so each task keeps its own defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seqmodels.errors import SeqmodelsError
from seqmodels.loading import TaskOptions, load_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run directory (outputs/DATE/TIME) or a checkpoint file")
    parser.add_argument(
        "text",
        help="the text to answer: a review, a sentence, the start of a text; "
        "- reads it from standard input (for long texts)",
    )
    parser.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    task_options = TaskOptions.add_to(parser, "predict")
    args = parser.parse_args(argv)
    try:
        run = load_run(args.run, args.checkpoint, args.device)
        options = task_options.given(args, run.cfg.task.kind)
        text = sys.stdin.read() if args.text == "-" else args.text
        result = run.predict(text, **options)
    except SeqmodelsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0
