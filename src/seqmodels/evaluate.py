"""`python scripts/evaluate.py RUN_DIR`: a checkpoint's metrics on the validation and test splits.

Useful for a run that was stopped before its final test (e.g. interrupted), or to re-check a
checkpoint on another machine. The data is prepared exactly as the run prepared it (its saved
config), from `--data-root` if the datasets live elsewhere now.

A language model can be evaluated with a continuous cache (seqmodels.models.cache): give
`--cache-size/--cache-theta/--cache-lambda`, or `--tune-cache` to choose theta and lambda on
the validation split (a grid, one validation pass each) and report the test split with them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from seqmodels.errors import CheckpointError, ConfigError, SeqmodelsError
from seqmodels.tasks import get_task
from seqmodels.training.checkpoint import checkpoint_path, load_checkpoint
from seqmodels.training.evaluation import evaluate_split

log = logging.getLogger("seqmodels")


# --tune-cache: theta along its grid with lambda at 0.1, then lambda along its grid with the best
# theta (one validation pass each), and lambda 0 (no cache), so the search never ends worse than
# the model alone
CACHE_THETAS = (0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0, 5.0)
CACHE_LAMBDAS = (0.0, 0.05, 0.15, 0.2, 0.3, 0.4)
FIRST_LAMBDA = 0.1


def evaluate_checkpoint(run: Path, checkpoint: str = "best.pt", data_root: Path | None = None,
                        device: str = "cpu", cache: tuple[int, float, float] | None = None,
                        tune_cache_size: int | None = None) -> dict[str, Any]:
    """The checkpoint's val and test metrics; a language model's with a continuous cache of
    (size, theta, lambda), or with the best theta and lambda on val for `tune_cache_size`."""
    path = checkpoint_path(run, checkpoint)
    state = load_checkpoint(path, map_location=device)
    cfg = OmegaConf.create(state["config"])
    if data_root is not None:
        cfg.data.root = str(data_root)
    task = get_task(cfg)
    if (cache is not None or tune_cache_size is not None) and not hasattr(task, "use_cache"):
        raise ConfigError(f"a continuous cache is for language models; {path} is a {cfg.task.name} model")
    data = task.prepare()
    if data.artifacts != state["artifacts"]:
        raise CheckpointError(f"the data prepared now differs from {path}'s (vocabulary or labels); "
                              f"check data.root and that the dataset files are the original ones")
    model = task.build_model(state["artifacts"])
    model.load_state_dict(state["model"])
    model.to(device)
    result: dict[str, Any] = {"checkpoint": str(path), "epoch": state["epoch"]}
    if cache is not None or tune_cache_size is not None:
        if tune_cache_size is not None:
            result["cache_search"] = search = []

            def validate(theta: float, lam: float) -> dict[str, float]:
                task.use_cache(tune_cache_size, theta, lam)
                val = evaluate_split(task, model, data.val, "val", torch.device(device))[task.monitor]
                log.info("cache size %d theta %g lambda %g: val %s %.4f", tune_cache_size, theta, lam, task.monitor, val)
                search.append({"theta": theta, "lambda": lam, "val": val})
                return search[-1]

            theta = min((validate(theta, FIRST_LAMBDA) for theta in CACHE_THETAS), key=lambda row: row["val"])["theta"]
            for lam in CACHE_LAMBDAS:
                validate(theta, lam)
            best = min(search, key=lambda row: row["val"])
            cache = (tune_cache_size, best["theta"], best["lambda"])
        task.use_cache(*cache)
        result["cache"] = dict(zip(("size", "theta", "lambda"), cache))
    result["val"] = evaluate_split(task, model, data.val, "val", torch.device(device))
    result["test"] = evaluate_split(task, model, data.test, "test", torch.device(device))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run directory or a checkpoint file")
    parser.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    parser.add_argument("--data-root", type=Path, default=None, help="where the datasets are now (default: the run's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-size", type=int, default=0,
                        help="language models: remember this many earlier hidden states per stream (e.g. 2000)")
    parser.add_argument("--cache-theta", type=float, default=0.3, help="how sharply the cache points (default 0.3)")
    parser.add_argument("--cache-lambda", type=float, default=0.1, help="the cache's weight in the mixture (default 0.1)")
    parser.add_argument("--tune-cache", action="store_true",
                        help=f"choose theta in {CACHE_THETAS}, then lambda in {(FIRST_LAMBDA, *CACHE_LAMBDAS)}, on val "
                             f"(needs --cache-size)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.tune_cache and args.cache_size < 1:
            raise ConfigError("--tune-cache needs --cache-size N (e.g. 2000): how many states the cache remembers")
        cache = (args.cache_size, args.cache_theta, args.cache_lambda) if args.cache_size and not args.tune_cache else None
        result = evaluate_checkpoint(args.run, args.checkpoint, args.data_root, args.device, cache,
                                     args.cache_size if args.tune_cache else None)
    except SeqmodelsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0
