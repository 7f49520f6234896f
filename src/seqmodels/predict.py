"""`python scripts/predict.py RUN_DIR TEXT [options]`: the best checkpoint of a run answers a text as JSON.

Sampling options (--temperature, --top-k, --length, --seed) go to the task as keyword
arguments only when given, so each task keeps its own defaults and ignores what it does not use.
"""

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


def predict(run: Path, text: str, checkpoint: str = "best.pt", device: str = "cpu", **options: Any) -> dict[str, Any]:
    state = load_checkpoint(checkpoint_path(run, checkpoint), map_location=device)
    cfg = OmegaConf.create(state["config"])
    task = get_task(cfg)
    model = task.build_model(state["artifacts"])
    model.load_state_dict(state["model"])
    model.to(device)
    return task.predict(model, state["artifacts"], text, **options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path, help="a run directory (outputs/DATE/TIME) or a checkpoint file")
    parser.add_argument("text", help="the text to answer: a review, a sentence, the start of a text; "
                                     "- reads it from standard input (for long texts)")
    parser.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    sampling = parser.add_argument_group("next-token prediction")
    sampling.add_argument("--temperature", type=float, help="below 1 sharpens, above 1 flattens (default 1)")
    sampling.add_argument("--top-k", type=int, help="list the K most likely next tokens and sample only among the "
                                                    "K most likely at each step; 1 is greedy (default 10)")
    sampling.add_argument("--length", type=int, help="tokens to sample (default 30 words or 200 characters)")
    sampling.add_argument("--seed", type=int, help="the same seed gives the same continuation (default: random)")
    args = parser.parse_args(argv)
    options = {name: getattr(args, name) for name in ("temperature", "top_k", "length", "seed")
               if getattr(args, name) is not None}
    try:
        text = sys.stdin.read() if args.text == "-" else args.text
        result = predict(args.run, text, args.checkpoint, args.device, **options)
    except SeqmodelsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0
