"""Which precision a torch RNN runs in under mixed precision (`trainer.precision`), found by running one.

Autocast runs a recurrent layer in whatever precision its kernel accepts, and that differs by device,
cell and library version: cuDNN's RNNs take float16 under CUDA autocast, bfloat16 only from cuDNN 9.13
on (older versions refuse it with an error), while on a CPU autocast runs LSTM and RNN layers in
bfloat16 but GRU layers, and every layer over packed sequences, in float32. So the first time an
encoder runs under autocast it runs a tiny RNN of its cell the way it will run its own (dense or
packed), forward and backward, and logs what it found once: the precision the
layers will run in, or, where the kernel refuses the precision, that the recurrent layers will run in
float32 outside autocast (the rest of the model keeps mixed precision). Losses, the CRF and every
softmax read float32 scores in any case (`.float()` where they are computed).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

log = logging.getLogger("seqmodels")

_FOUND: dict[tuple[type[nn.RNNBase], bool, str, torch.dtype], torch.dtype | None] = {}


def recurrent_precision(
    rnn_class: type[nn.RNNBase], packed: bool, device: torch.device, dtype: torch.dtype
) -> torch.dtype | None:
    """The dtype a `rnn_class` layer's outputs have, over `packed` sequences or dense ones, under
    autocast to `dtype` on `device`'s kind of device, or None where the layer fails in it (probed once
    per process, then remembered)."""
    key = (rnn_class, packed, device.type, dtype)
    if key not in _FOUND:
        _FOUND[key] = probe(rnn_class, packed, device, dtype)
    return _FOUND[key]


def probe(rnn_class: type[nn.RNNBase], packed: bool, device: torch.device, dtype: torch.dtype) -> torch.dtype | None:
    """Run a 2-layer bidirectional `rnn_class` forward and backward under autocast on a `packed` or a
    dense batch. Draws no random numbers (training's random stream stays as it was)."""
    name = f"{rnn_class.__name__} layers over {'packed' if packed else 'dense'} batches under {dtype} autocast"
    name += f" on {device.type}"
    make: Any = rnn_class  # nn.RNNBase's own signature starts with the mode; its subclasses' do not
    rnn = make(4, 4, num_layers=2, bidirectional=True, batch_first=True, device="meta").to_empty(device=device)
    for parameter in rnn.parameters():
        nn.init.constant_(parameter, 0.1)
    x = torch.linspace(-1.0, 1.0, 24, device=device).view(2, 3, 4).requires_grad_()
    try:
        with torch.enable_grad(), torch.autocast(device.type, dtype=dtype):
            out, _ = rnn(pack_padded_sequence(x, torch.tensor([3, 2]), batch_first=True) if packed else x)
            outputs = out.data if packed else out
        outputs.float().sum().backward()
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        log.warning("%s fail (%s): they run in float32, the rest of the model in %s", name, reason, dtype)
        return None
    log.info("%s run in %s", name, outputs.dtype)
    return outputs.dtype
