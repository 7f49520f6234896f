"""Corpus-level translation scores with sacreBLEU on detokenized text: BLEU as everyone reports it
(cased, its 13a tokenizer, exponential smoothing), lowercased BLEU, and chrF."""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF

METRICS = {"bleu": BLEU(), "bleu_lowercase": BLEU(lowercase=True), "chrf": CHRF()}


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """{bleu, chrf, bleu_lowercase} of the hypotheses against one reference each, 0-100."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not hypotheses:
        return {name: float("nan") for name in METRICS}
    return {
        name: float(metric.corpus_score(list(hypotheses), [list(references)]).score) for name, metric in METRICS.items()
    }


def signatures() -> dict[str, str]:
    """sacreBLEU's signature of each score, e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`."""
    found = {}
    for name, metric in METRICS.items():
        metric.corpus_score(["a"], [["a"]])  # the signature names the number of references, known once scored
        found[name] = str(metric.get_signature())
    return found
