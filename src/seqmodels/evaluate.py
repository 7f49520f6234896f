"""`python scripts/evaluate.py RUN_DIR`: a checkpoint's metrics on the validation and test splits.

Useful for a run that was stopped before its final test (e.g. interrupted), or to re-check a
checkpoint on another machine. The data is prepared exactly as the run prepared it (its saved
config), from `--data-root` if the datasets live elsewhere now.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from seqmodels.errors import CheckpointError, SeqmodelsError
from seqmodels.tasks import get_task
from seqmodels.training.checkpoint import checkpoint_path, load_checkpoint
from seqmodels.training.evaluation import evaluate_split


def evaluate_checkpoint(run: Path, checkpoint: str = "best.pt", data_root: Path | None = None,
                        device: str = "cpu") -> dict[str, Any]:
    path = checkpoint_path(run, checkpoint)
    state = load_checkpoint(path, map_location=device)
    cfg = OmegaConf.create(state["config"])
    if data_root is not None:
        cfg.data.root = str(data_root)
    task = get_task(cfg)
    data = task.prepare()
    if data.artifacts != state["artifacts"]:
        raise CheckpointError(f"the data prepared now differs from {path}'s (vocabulary or labels); "
                              f"check data.root and that the dataset files are the original ones")
    model = task.build_model(state["artifacts"])
    model.load_state_dict(state["model"])
    model.to(device)
    return {"checkpoint": str(path), "epoch": state["epoch"],
            "val": evaluate_split(task, model, data.val, "val", torch.device(device)),
            "test": evaluate_split(task, model, data.test, "test", torch.device(device))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run directory or a checkpoint file")
    parser.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    parser.add_argument("--data-root", type=Path, default=None, help="where the datasets are now (default: the run's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        result = evaluate_checkpoint(args.run, args.checkpoint, args.data_root, args.device)
    except SeqmodelsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0
