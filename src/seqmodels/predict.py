"""`python scripts/predict.py RUN_DIR TEXT`: the best checkpoint of a run answers a text as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from seqmodels.errors import SeqmodelsError
from seqmodels.tasks import get_task
from seqmodels.training.checkpoint import checkpoint_path, load_checkpoint


def predict(run: Path, text: str, checkpoint: str = "best.pt", device: str = "cpu") -> dict[str, Any]:
    state = load_checkpoint(checkpoint_path(run, checkpoint), map_location=device)
    cfg = OmegaConf.create(state["config"])
    task = get_task(cfg)
    model = task.build_model(state["artifacts"])
    model.load_state_dict(state["model"])
    model.to(device)
    return task.predict(model, state["artifacts"], text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path, help="a run directory (outputs/DATE/TIME) or a checkpoint file")
    parser.add_argument("text", help="the text to answer, e.g. a review")
    parser.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args(argv)
    try:
        result = predict(args.run, args.text, args.checkpoint, args.device)
    except SeqmodelsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0
