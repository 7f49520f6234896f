"""`python scripts/evaluate.py RUN_DIR`: a checkpoint's metrics on the validation and test splits.

Useful for a run that was stopped before its final test (e.g. interrupted), or to re-check a
checkpoint on another machine. The data is prepared exactly as the run prepared it (its saved
config), from `--data-root` if the datasets live elsewhere now. Each task declares its own options
(e.g. a language model's continuous cache: `--cache-size`, `--tune-cache`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from seqmodels.errors import CheckpointError, SeqmodelsError
from seqmodels.inference.loading import LoadedRun, TaskOptions, load_run
from seqmodels.training.evaluation import Evaluation, final_evaluation

log = logging.getLogger("seqmodels")


def evaluate_checkpoint(loaded: LoadedRun, **options: Any) -> dict[str, Any]:
    """The loaded checkpoint's val and test metrics (and its extra test sets'), with the task's evaluation
    `options` applied: the final evaluation `Trainer.finish` runs, under the run's trainer.precision and
    trainer.limit_val_batches, so a run's metrics.json is reproduced."""
    task, model = loaded.task, loaded.model
    task.check_evaluation_options(**options)
    data = task.prepare()
    if data.artifacts != loaded.artifacts:
        raise CheckpointError(
            f"the data prepared now differs from {loaded.checkpoint}'s (vocabulary or labels); "
            f"check data.root and that the dataset files are the original ones"
        )
    evaluation = Evaluation.of_run(loaded.cfg.trainer, loaded.device, doing="evaluating")
    report = final_evaluation(task, model, data, evaluation, **options)
    settings = report.pop("evaluation", {})
    return {"checkpoint": str(loaded.checkpoint), "epoch": loaded.epoch, **settings, **report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run directory or a checkpoint file")
    parser.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    parser.add_argument("--data-root", type=Path, default=None, help="where the datasets are now (default: the run's)")
    parser.add_argument("--device", default="cpu")
    task_options = TaskOptions.add_to(parser, "evaluate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        loaded = load_run(args.run, args.checkpoint, args.device, args.data_root)
        result = evaluate_checkpoint(loaded, **task_options.given(args, loaded.cfg.task.kind))
    except SeqmodelsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0
