"""Tags from an exported tagger's emission scores, with numpy alone (what a runtime does after the graph).

    import json, numpy as np, onnxruntime
    session = onnxruntime.InferenceSession("model.onnx")
    sidecar = json.load(open("model.json"))
    (emissions,) = session.run(None, {"tokens": tokens, "lengths": lengths, ...})
    tags = [[sidecar["tags"][i] for i in row] for row in decode_tags(emissions, lengths, sidecar["decoding"])]

`decoding` is the sidecar's: {"method": "argmax"}, or {"method": "viterbi", "transitions": (K, K) scores
of tag j after tag i, "start": (K,), "end": (K,), "log_softmax": whether Viterbi reads log-softmax
emissions (valid IOB2 tags without a CRF)}; forbidden moves score -1e9.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def decode_tags(emissions: np.ndarray, lengths: np.ndarray, decoding: dict[str, Any]) -> list[list[int]]:
    """(B, T, K) emission scores and (B,) lengths -> each row's tag ids, `lengths[b]` of them."""
    rows = []
    for scores, length in zip(emissions, lengths):
        scores = scores[: int(length)].astype(np.float64)
        if decoding["method"] == "argmax":
            rows.append(scores.argmax(-1).tolist())
            continue
        if decoding.get("log_softmax"):
            scores = scores - scores.max(-1, keepdims=True)
            scores = scores - np.log(np.exp(scores).sum(-1, keepdims=True))
        rows.append(viterbi(scores, np.asarray(decoding["transitions"]), decoding["start"], decoding["end"]))
    return rows


def viterbi(emissions: np.ndarray, transitions: np.ndarray, start: Any, end: Any) -> list[int]:
    """The tag ids maximising start + emissions + transitions + end over one (T, K) sentence."""
    best = np.asarray(start) + emissions[0]
    backpointers = []
    for scores in emissions[1:]:
        candidates = best[:, None] + transitions  # [previous, next]
        backpointers.append(candidates.argmax(0))
        best = candidates.max(0) + scores
    tag = int((best + np.asarray(end)).argmax())
    path = [tag]
    for pointers in reversed(backpointers):
        tag = int(pointers[tag])
        path.append(tag)
    return path[::-1]
