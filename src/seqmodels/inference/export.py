"""`python scripts/export.py RUN_DIR --format onnx [--output model.onnx]`: a run's model as an ONNX graph,
with what a runtime needs besides it (vocabulary, tokenizer, label or tag names, decoding) in a JSON
file of the same name beside it (model.onnx -> model.json).

Sentiment runs export the classifier (token ids and lengths in, class probabilities out), NER runs
the tagger's emission scores (tags: argmax, or Viterbi with the scores in the JSON; see
`seqmodels.inference.onnx_decoding`), language models one step (token ids and state in, log-probabilities and
state out). Batch and length axes are dynamic; the input ids are right-padded, `lengths` says where
each row ends.

The graph is written by torch's TorchScript-based exporter, which writes the recurrent layers as
ONNX's own RNN, GRU and LSTM operators over any length; torch.export's exporter unrolls them over
the example's length, so the graph would not take other lengths.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqmodels.atomic import save_json
from seqmodels.errors import ConfigError, SeqmodelsError
from seqmodels.inference.loading import load_run
from seqmodels.tasks.base import Task

FORMATS = ("onnx",)
OPSET = 17


def export_onnx(task: Task, model: nn.Module, artifacts: dict[str, Any], path: Path) -> dict[str, Any]:
    """Write `model` (on the CPU) as `path` and its sidecar as `path` with a .json suffix; returns the sidecar."""
    try:
        import onnx  # torch's exporter needs it too
    except ImportError:
        raise ConfigError('ONNX export needs the onnx package: pip install "seqmodels[export]"') from None
    graph = task.export_graph(model.eval(), artifacts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as folder:
        written = Path(folder) / path.name
        with torch.no_grad(), warnings.catch_warnings():
            # the exporter's notes on tracing (shapes read as numbers, the legacy exporter) are about
            # what this graph does on purpose: right-padded rows of any length through native RNN ops
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph.module,
                graph.example_inputs,
                str(written),
                dynamo=False,
                opset_version=OPSET,
                input_names=graph.input_names,
                output_names=graph.output_names,
                dynamic_axes=graph.dynamic_axes,
            )
        # the exporter leaves out inputs the graph does not read (a forward-only tagger's lengths)
        inputs = [tensor.name for tensor in onnx.load(str(written), load_external_data=False).graph.input]
        written.replace(path)
    sidecar = {
        "task": task.cfg.task.name,
        "kind": task.cfg.task.kind,
        "model": task.describe(),
        "inputs": inputs,
        "outputs": graph.output_names,
        "opset": OPSET,
        **graph.sidecar,
    }
    save_json(sidecar, sidecar_path(path))
    return sidecar


def sidecar_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run directory or a checkpoint file")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--output", "-o", type=Path, help="the graph's file (default: RUN/export/model.onnx)")
    parser.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    args = parser.parse_args(argv)
    try:
        run = load_run(args.run, args.checkpoint, "cpu")
        output = args.output or run.checkpoint.parent.parent / "export" / "model.onnx"
        export_onnx(run.task, run.model, run.artifacts, output)
    except SeqmodelsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"onnx": str(output), "sidecar": str(sidecar_path(output))}))
    return 0
