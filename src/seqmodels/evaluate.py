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
from seqmodels.training.evaluation import evaluate_split

log = logging.getLogger("seqmodels")


def evaluate_checkpoint(loaded: LoadedRun, **options: Any) -> dict[str, Any]:
    """The loaded checkpoint's val and test metrics, with the task's evaluation `options` applied."""
    task, model = loaded.task, loaded.model
    task.check_evaluation_options(**options)
    data = task.prepare()
    if data.artifacts != loaded.artifacts:
        raise CheckpointError(
            f"the data prepared now differs from {loaded.checkpoint}'s (vocabulary or labels); "
            f"check data.root and that the dataset files are the original ones"
        )
    result: dict[str, Any] = {"checkpoint": str(loaded.checkpoint), "epoch": loaded.epoch}
    result.update(task.configure_evaluation(model, data, loaded.device, **options))
    for split, loader in (("val", data.val), ("test", data.test), *data.extra_tests.items()):
        result[split] = evaluate_split(task, model, loader, data.artifacts, split, loaded.device)
    return result


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
