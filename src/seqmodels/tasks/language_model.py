"""Next-token prediction (language modelling): words of PTB or WikiText-2, IMDB's training reviews
(`task=imdb_lm`, to pretrain a sentiment classifier's encoder), the words (`task=words`) or the
characters (`task=chars`) of any UTF-8 text file; perplexity, samples and continuations.
`data.reverse=true` reads every text backwards: a backward language model, which can start the
backward direction of a bidirectional encoder (`model.init_from`, docs/transfer.md).

Training is truncated backpropagation through time: the text is laid out as parallel streams
read window by window (`data.corpus`), and the recurrent state at the end of a window starts
the next one, detached so gradients stop at the window boundary. The state lives here, in
the task, and `start_pass` resets it before every pass over a split. Evaluation reads a split
the same way and reports perplexity = exp(mean loss) over every predicted token.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
from torch import nn

from seqmodels.data.corpus import EOS, IGNORE
from seqmodels.data.language_model_data import (
    CHARACTERS,
    WORDS,
    LanguageModelArtifacts,
    LanguageModelData,
    TextWindow,
    prepare_language_model_data,
)
from seqmodels.errors import ConfigError
from seqmodels.models import LanguageModelConfig
from seqmodels.models.cache import ContinuousCache
from seqmodels.models.language_model import LanguageModel, State, detach_state, draw, sample
from seqmodels.models.modes import evaluating
from seqmodels.models.onnx_graphs import OnnxGraph, language_model_step_graph
from seqmodels.schema import Section, add_options, setting, with_options
from seqmodels.tasks.base import Answers, SplitPass, StepOutput, Task, TaskData
from seqmodels.tasks.vectors import pretrained_rows, read_vectors

log = logging.getLogger("seqmodels")

SAMPLE_LENGTH = {"word": 30, "char": 200}  # tokens sampled for TensorBoard and by default in `predict`
NUM_EXAMPLES = 3
# evaluate.py --tune-cache: the grids searched on validation (see configure_evaluation)
CACHE_THETAS = (0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0, 5.0)
CACHE_LAMBDAS = (0.0, 0.05, 0.15, 0.2, 0.3, 0.4)
FIRST_LAMBDA = 0.1


@dataclass
class CacheOptions(Section):
    """`evaluate.py`'s options of a language model: the final evaluation with a continuous cache over the
    model's predictions (`models.cache`; Grave et al. 2017). Training never uses one."""

    cache_size: int = setting(
        0, "remember this many earlier hidden states per stream (e.g. 2000): a continuous cache; 0: none", minimum=0
    )
    cache_theta: float = setting(0.3, "how sharply the cache points", minimum=0.0, low_open=True)
    cache_lambda: float = setting(0.1, "the cache's weight in the mixture", minimum=0.0, maximum=1.0, high_open=False)
    tune_cache: bool = setting(
        False,
        f"choose theta in {CACHE_THETAS}, then lambda in {(FIRST_LAMBDA, *CACHE_LAMBDAS)}, on val (needs --cache-size)",
    )

    def check(self) -> None:
        if self.tune_cache and not self.cache_size:
            raise ConfigError("--tune-cache needs --cache-size N (e.g. 2000): how many states the cache remembers")


@dataclass
class SamplingOptions(Section):
    """`predict.py`'s options of a language model (and the keywords of `load_run(...).predict`)."""

    temperature: float = setting(1.0, "below 1 sharpens, above 1 flattens", minimum=0.0, low_open=True)
    top_k: int = setting(
        10,
        "list the K most likely next tokens and sample only among the K most likely at each step; 1 is greedy",
        minimum=1,
    )
    length: int | None = setting(
        None,
        f"tokens to sample (default: {SAMPLE_LENGTH['word']} words or {SAMPLE_LENGTH['char']} characters)",
        minimum=0,
    )
    seed: int | None = setting(None, "the same seed gives the same continuation (default: random)")


class LanguageModelTask(Task[TextWindow]):
    monitor = "perplexity"
    mode = "min"
    metrics = ("perplexity", "loss")

    data_schema = LanguageModelData
    model_schema = LanguageModelConfig
    data_config: LanguageModelData
    model_config: LanguageModelConfig

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self._state: State | None = None  # the recurrent state carried from one window to the next
        self.cache: ContinuousCache | None = None  # evaluation with a continuous cache: use_cache()

    def check_config(self) -> None:
        if self.model_config.pretrained_vectors and self.data_config.dataset == CHARACTERS:
            raise ConfigError(
                f"model.pretrained_vectors={self.model_config.pretrained_vectors} holds word vectors, "
                f"but data.dataset={CHARACTERS} models characters; drop model.pretrained_vectors"
            )

    def prepare(self) -> TaskData:
        vectors = read_vectors(self.model_config, self.data_config)
        streams = prepare_language_model_data(self.data_config)
        if vectors is not None:
            # The corpus' own vocabulary, never extended: the output layer predicts exactly these words.
            vocabulary = streams.artifacts.vocabulary
            self.pretrained, _ = pretrained_rows(vectors, vocabulary, frozen=0, train_ids=streams.train_ids)
        return streams.data

    # -- model, loss, metrics ---------------------------------------------------------------
    def build_model(self, artifacts: dict[str, Any]) -> nn.Module:
        vocab_size = LanguageModelArtifacts.from_dict(artifacts).vocab_size
        model = self.model_config
        cutoffs = model.adaptive_cutoffs or []
        if self.data_config.dataset == WORDS and cutoffs and cutoffs[-1] >= vocab_size:
            # a file's vocabulary size is not known in advance: keep the clusters it can fill
            kept = [cutoff for cutoff in cutoffs if cutoff < vocab_size] or None
            log.info(
                "model.adaptive_cutoffs=%s for a vocabulary of %s words: %s",
                cutoffs,
                f"{vocab_size:,}",
                f"using {kept}" if kept else "a full softmax",
            )
            model = replace(model, adaptive_cutoffs=kept)
        return model.build(vocab_size, ignore_index=IGNORE, pretrained=self.pretrained)

    def embedding_words(self, artifacts: dict[str, Any]) -> list[str]:
        return LanguageModelArtifacts.from_dict(artifacts).vocabulary

    def use_cache(self, size: int, theta: float, lam: float) -> None:
        """Evaluate from now on with a continuous cache (`CacheOptions`); size 0: without one."""
        with_options(CacheOptions(), {"cache_size": size, "cache_theta": theta, "cache_lambda": lam})
        self.cache = ContinuousCache(size, theta, lam, IGNORE) if size else None

    @classmethod
    def add_predict_options(cls, group) -> None:
        add_options(group, SamplingOptions)

    @classmethod
    def add_evaluate_options(cls, group) -> None:
        add_options(group, CacheOptions)

    def check_evaluation_options(self, **options: Any) -> None:
        with_options(CacheOptions(), options)

    def configure_evaluation(
        self, model: nn.Module, data: TaskData, evaluate: SplitPass, **options: Any
    ) -> dict[str, Any]:
        """With a cache size: evaluate with a continuous cache of (size, theta, lambda), or with
        `tune_cache` the theta and lambda that are best on validation (a grid, one pass each: theta
        along its grid with lambda at 0.1, then lambda along its grid with the best theta, and
        lambda 0, so the search never ends worse than the model alone)."""
        cache = with_options(CacheOptions(), options)
        cache_size, theta, lam = cache.cache_size, cache.cache_theta, cache.cache_lambda
        if not cache_size:
            return {}
        report: dict[str, Any] = {}
        if cache.tune_cache:
            search: list[dict[str, float]] = []

            def validate(theta: float, lam: float) -> dict[str, float]:
                self.use_cache(cache_size, theta, lam)
                val = evaluate(data.val, "val")[self.monitor]
                log.info("cache size %d theta %g lambda %g: val %s %.4f", cache_size, theta, lam, self.monitor, val)
                search.append({"theta": theta, "lambda": lam, "val": val})
                return search[-1]

            theta = min((validate(t, FIRST_LAMBDA) for t in CACHE_THETAS), key=lambda row: row["val"])["theta"]
            for candidate in CACHE_LAMBDAS:
                validate(theta, candidate)
            best = min(search, key=lambda row: row["val"])
            theta, lam = best["theta"], best["lambda"]
            report["cache_search"] = search
        self.use_cache(cache_size, theta, lam)
        report["cache"] = {"size": cache_size, "theta": theta, "lambda": lam}
        return report

    def start_pass(self, model: nn.Module, split: str) -> None:
        self._state = None  # every pass reads its split from the beginning
        if self.cache is not None:
            self.cache.reset()

    def step(self, model: nn.Module, batch: TextWindow) -> StepOutput:
        if self.cache is not None and not model.training:
            log_probs, hidden, state = cast(LanguageModel, model).score(batch.inputs, self._state, batch.targets)
            probs = self.cache.probabilities(hidden, batch.targets, log_probs.exp())
            loss_sum = -probs[batch.targets != IGNORE].log().sum()
        else:
            loss_sum, state = model(batch.inputs, self._state, batch.targets)
        self._state = detach_state(state)
        count = batch.num_targets
        details = None if model.training else (loss_sum.item(), count)  # eval mode only: the read waits
        # Weighted by target tokens, so the trainer's epoch loss is the mean token loss too.
        return StepOutput(loss_sum / count, count, count, details=details)

    def evaluate(self, outputs: list[StepOutput], artifacts: dict[str, Any]) -> dict[str, float]:
        count = sum(o.details[1] for o in outputs)
        if count == 0:
            return {"perplexity": float("nan"), "loss": float("nan")}
        loss = sum(o.details[0] for o in outputs) / count
        return {"perplexity": math.exp(loss) if loss < 700 else math.inf, "loss": loss}

    # -- text in, text out ------------------------------------------------------------------
    @staticmethod
    def _render(ids: list[int], found: LanguageModelArtifacts) -> str:
        return found.join([found.vocabulary[i] for i in ids])

    def examples(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, str]:
        """A few samples from the whole distribution, from the same seed every epoch, so the
        logged texts show how the model's idea of the language evolves."""
        found = LanguageModelArtifacts.from_dict(artifacts)
        with evaluating(model):
            samples = sample(
                cast(LanguageModel, model),
                [found.vocabulary.index(found.start)],
                SAMPLE_LENGTH[found.level],
                num_samples=NUM_EXAMPLES,
                top_k=found.vocab_size,
                generator=torch.Generator().manual_seed(self.cfg.seed),
            )
        blocks = []
        for number, ids in enumerate(samples, 1):
            text = self._render(ids, found).replace(f" {EOS} ", "\n").replace(EOS, "\n")
            # indented: a markdown code block keeps spaces and line breaks as sampled
            blocks.append(f"sample {number}:\n\n" + "\n".join(f"    {line}" for line in text.split("\n")))
        return {"samples": "\n\n".join(blocks)}

    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, **options: Any) -> dict[str, Any]:
        return self.predict_batch(model, artifacts, [text], **options).results[0]

    @torch.no_grad()
    def predict_batch(self, model: nn.Module, artifacts: dict[str, Any], texts: list[str], **options: Any) -> Answers:
        """For each text, the `top_k` most likely next tokens and a sampled continuation of `length`
        tokens (drawn from the `top_k` most likely at each step; top_k=1 is greedy): `SamplingOptions`. Each
        text draws from its own generator, seeded with `seed`, so a text continues as it would alone. Options
        other tasks use are ignored."""
        sampling = with_options(SamplingOptions(), options)
        temperature, top_k, seed = sampling.temperature, sampling.top_k, sampling.seed
        found = LanguageModelArtifacts.from_dict(artifacts)
        length = SAMPLE_LENGTH[found.level] if sampling.length is None else sampling.length
        model.eval()
        vocabulary = found.vocabulary
        index = {token: i for i, token in enumerate(vocabulary)}
        prompts = [self._prompt(text, found, index) for text in texts]
        # prompts of one length run together: a batch without padding continues every row from its own end
        by_length: dict[int, list[int]] = {}
        for i, (context, _) in enumerate(prompts):
            by_length.setdefault(len(context), []).append(i)
        device = next(model.parameters()).device
        results: list[dict[str, Any]] = [{} for _ in texts]
        for rows in by_length.values():
            logits, state = model(torch.tensor([prompts[i][0] for i in rows], device=device))
            last = logits[:, -1].float()
            top = last.softmax(-1).cpu().topk(min(top_k, len(vocabulary)))
            generators = [torch.Generator() for _ in rows]
            for generator in generators:
                generator.seed() if seed is None else generator.manual_seed(seed)
            drawn: list[torch.Tensor] = []
            for step in range(length):
                token = torch.cat([draw(last[r : r + 1], temperature, top_k, g) for r, g in enumerate(generators)])
                drawn.append(token)
                if step + 1 < length:
                    logits, state = model(token.view(-1, 1).to(device), state)
                    last = logits[:, -1].float()
            continuations = torch.stack(drawn, dim=1).tolist() if drawn else [[] for _ in rows]
            for r, i in enumerate(rows):
                results[i] = {
                    "text": texts[i],
                    "next": [
                        {"token": vocabulary[t], "probability": round(float(p), 4)}
                        for p, t in zip(top.values[r].tolist(), top.indices[r].tolist())
                    ],
                    "continuation": self._render(continuations[r], found),
                    "unknown": prompts[i][1],
                    "temperature": temperature,
                    "top_k": top_k,
                    "length": length,
                    "seed": seed,
                }
        return Answers(results, tokens=sum(len(context) for context, _ in prompts))

    @staticmethod
    def _prompt(text: str, found: LanguageModelArtifacts, index: dict[str, int]) -> tuple[list[int], list[str]]:
        """The ids the model reads for `text` (the start token first) and its tokens the vocabulary lacks."""
        if found.level == "word":
            # PTB is lowercase: "The" is read as "the" when only that is a word of the corpus
            prompt = [word if word in index or word.lower() not in index else word.lower() for word in text.split()]
        else:
            prompt = list(text)
        unknown = [token for token in prompt if token not in index]
        if found.unknown is None:
            prompt = [token for token in prompt if token in index]  # no unknown token to stand in for them
        # every token is known when there is no unknown token
        fallback = -1 if found.unknown is None else index.get(found.unknown, -1)
        return [index[found.start], *(index.get(token, fallback) for token in prompt)], unknown

    def export_graph(self, model: nn.Module, artifacts: dict[str, Any]) -> OnnxGraph:
        found = LanguageModelArtifacts.from_dict(artifacts)
        graph = language_model_step_graph(model, found.vocab_size)
        graph.sidecar.update(
            {"vocabulary": found.vocabulary, "level": found.level, "start": found.start, "unknown": found.unknown}
        )
        return graph
