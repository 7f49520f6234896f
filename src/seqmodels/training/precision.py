"""`trainer.precision`: the dtype a run computes in under autocast on its device, the same for its training
steps and for every evaluation of its weights (the trainer's and `evaluate.py`'s)."""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractContextManager

import torch

log = logging.getLogger("seqmodels")

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


def autocast_dtype(precision: str, device: torch.device, doing: str = "training") -> torch.dtype | None:
    """The autocast dtype of `trainer.precision` on `device`; None (float32) off CUDA and for bf16 on a GPU
    without bfloat16, each said in a warning about what is `doing` so."""
    dtype = PRECISIONS[precision]
    if dtype is not None and device.type != "cuda":
        log.warning("trainer.precision=%s applies to CUDA only; %s in float32 on %s", precision, doing, device)
        return None
    if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported(including_emulation=False):
        log.warning(
            "trainer.precision=bf16 needs a GPU with bfloat16 (Ampere or newer); %s in float32 on %s "
            '(trainer.precision="16" runs float16 with loss scaling)',
            doing,
            torch.cuda.get_device_name(device),
        )
        return None
    return dtype


def autocast(dtype: torch.dtype | None) -> AbstractContextManager:
    """Mixed precision in `dtype` on CUDA, or nothing (float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)
