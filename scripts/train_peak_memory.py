"""`python train.py OVERRIDES` in this process, then the peak CUDA memory of the run, in a JSON file.

    python scripts/train_peak_memory.py PEAK.json task=imdb trainer.device=cuda hydra.run.dir=runs/x

The training is the normal command line (`seqmodels.cli.main`: Hydra, the run directory, train.log,
metrics.json, exit codes as train.py's); afterwards, also when it failed or was stopped, PEAK.json gets
`torch.cuda.max_memory_allocated()` (what tensors held at most: weights, optimizer state, activations,
the largest evaluation batch) and `max_memory_reserved()` (what PyTorch's caching allocator took from
the device at most), in bytes, or null when the run never touched a GPU. scripts/gpu_check.sh reports
them beside each run's tokens/s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def peak_memory() -> dict[str, int | str | None]:
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {"device": None, "max_memory_allocated": None, "max_memory_reserved": None}
    return {
        "device": torch.cuda.get_device_name(),
        "max_memory_allocated": torch.cuda.max_memory_allocated(),
        "max_memory_reserved": torch.cuda.max_memory_reserved(),
    }


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(f"usage: {Path(sys.argv[0]).name} PEAK.json [train.py overrides...]")
    out = Path(sys.argv[1])
    from seqmodels.cli import main as train

    sys.argv = [str(ROOT / "train.py"), *sys.argv[2:]]
    code: int | str | None = 1
    try:
        train()
        code = 0
    except SystemExit as stop:
        code = stop.code
        raise
    finally:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**peak_memory(), "exit_code": code}, indent=2) + "\n")


if __name__ == "__main__":
    main()
