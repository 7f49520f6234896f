"""Next-token prediction (language modelling): words of PTB or WikiText-2, or the characters of
any UTF-8 text file; perplexity, samples and continuations.

Training is truncated backpropagation through time: the text is laid out as parallel streams
read window by window (`data.corpus`), and the recurrent state at the end of a window starts
the next one, detached so gradients stop at the window boundary. The state lives here, in
the task, and `start_pass` resets it before every pass over a split. Evaluation reads a split
the same way and reports perplexity = exp(mean loss) over every predicted token.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqmodels.data import ptb, wikitext2
from seqmodels.data.cache import cache_key, cached
from seqmodels.data.corpus import (EOS, IGNORE, UNKNOWN, UNKNOWN_CHAR, StreamWindows, build_vocabulary, encode,
                                   lay_out, read_text, read_words, split_by_fractions)
from seqmodels.checks import require_bool, require_int, require_number
from seqmodels.errors import ConfigError, DataError
from seqmodels.models import LanguageModel, encoder_kwargs
from seqmodels.models.cache import ContinuousCache
from seqmodels.models.language_model import detach_state, sample
from seqmodels.tasks.base import Batch, StepOutput, Task, TaskData

log = logging.getLogger("seqmodels")

WORD_CORPORA = {"ptb": ptb, "wikitext2": wikitext2}
CHARACTERS = "chars"  # data.dataset for the characters of the file at data.path
SAMPLE_LENGTH = {"word": 30, "char": 200}  # tokens sampled for TensorBoard and by default in `predict`
NUM_EXAMPLES = 3


@dataclass
class TextWindow(Batch):
    inputs: torch.Tensor  # (streams, steps) token ids
    targets: torch.Tensor  # (streams, steps): the inputs shifted by one; IGNORE past the end of the text


class LanguageModelTask(Task):
    monitor = "perplexity"
    mode = "min"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self._check_config()  # a bad config fails before any data is read
        self._state = None  # the recurrent state carried from one window to the next
        self.cache: ContinuousCache | None = None  # evaluation with a continuous cache: use_cache()

    # -- configuration ----------------------------------------------------------------------
    def _check_config(self) -> None:
        model, data = self.cfg.model, self.cfg.data
        if model.bidirectional:
            raise ConfigError("model.bidirectional=true cannot predict the next token: the backward direction "
                              "reads the tokens to be predicted; use model.bidirectional=false")
        tie = model.get("tie_weights", False)
        require_bool("model.tie_weights", tie)
        cutoffs = model.get("adaptive_cutoffs")
        if cutoffs is not None and (not isinstance(cutoffs, Sequence) or isinstance(cutoffs, str)
                                    or not all(isinstance(c, int) and not isinstance(c, bool) for c in cutoffs)):
            raise ConfigError(f"model.adaptive_cutoffs={cutoffs!r} must be a list of word counts, e.g. [2000,10000], "
                              f"or null for a full softmax")
        if tie and cutoffs:
            raise ConfigError("model.tie_weights=true needs a full softmax: set model.adaptive_cutoffs=null or "
                              "model.tie_weights=false")
        if tie and model.embedding_dim != model.hidden_size:
            raise ConfigError(f"model.tie_weights=true needs model.embedding_dim == model.hidden_size (got "
                              f"{model.embedding_dim} and {model.hidden_size}); make them equal or untie")
        for key in ("batch_size", "bptt"):
            require_int(f"data.{key}", data[key])
        require_int("data.eval_batch_size", data.eval_batch_size, allow_none=True)  # null: data.batch_size
        self._settings()

    def _settings(self) -> dict[str, Any]:
        """What the cached id streams depend on (the layout does not: it is cheap to redo)."""
        data = self.cfg.data
        if data.dataset in WORD_CORPORA:
            return {"dataset": data.dataset, "level": "word"}
        if data.dataset != CHARACTERS:
            raise ConfigError(f"data.dataset={data.dataset!r} is not a language-model corpus; use one of "
                              f"{sorted([*WORD_CORPORA, CHARACTERS])}")
        if not data.get("path"):
            raise ConfigError("task=chars needs a text file: add data.path=/path/to/file.txt")
        val, test = data.val_fraction, data.test_fraction
        require_number("data.val_fraction", val, 0.0, 1.0, low_open=True)
        require_number("data.test_fraction", test, 0.0, 1.0, low_open=True)
        if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
            raise ConfigError(f"data.val_fraction={val} and data.test_fraction={test} are impossible; each must be "
                              f"in (0, 1) and together below 1 (e.g. 0.05 and 0.05)")
        return {"dataset": CHARACTERS, "level": "char", "val_fraction": val, "test_fraction": test}

    # -- data -------------------------------------------------------------------------------
    def _sources(self, settings: dict[str, Any]) -> dict[str, Path]:
        data = self.cfg.data
        if settings["level"] == "word":
            return WORD_CORPORA[settings["dataset"]].locate(Path(data.root), allow_download=data.download)
        path = Path(data.path).expanduser()
        if not path.is_file():
            raise DataError(f"data.path={data.path} is not a file; point it at a UTF-8 text file")
        return {"text": path.resolve()}

    def prepare(self) -> TaskData:
        settings = self._settings()
        data = self.cfg.data
        sources = self._sources(settings)
        key = cache_key(list(sources.values()), {**settings, "vocabulary": "most frequent first"})
        name = settings["dataset"]
        entry, _ = cached(Path(data.cache_dir), name, key, lambda: self._build_cache(sources, settings))
        streams = {"train": lay_out(entry["train"], data.batch_size)}
        for split in ("val", "test"):
            streams[split] = lay_out(entry[split], data.eval_batch_size or data.batch_size)
        loaders = {split: StreamWindows(streams[split], data.bptt, TextWindow) for split in streams}
        vocabulary = entry["vocabulary"]
        if settings["level"] == "word":
            start = EOS  # a prompt starts a new sentence, as every line of the corpus follows an <eos>
        else:
            start = "\n" if "\n" in vocabulary else vocabulary[1]  # [0] is the unknown
        artifacts = {
            "level": settings["level"],
            "vocabulary": vocabulary,
            "vocab_size": len(vocabulary),
            "unknown": entry["unknown"],
            "start": start,
        }
        train = streams["train"]
        summary = {
            "dataset": f"{name} ({', '.join(str(path) for path in sources.values())})",
            "tokens train / val / test": " / ".join(f"{len(entry[split]):,}" for split in ("train", "val", "test")),
            "vocabulary": f"{len(vocabulary):,} {'words' if settings['level'] == 'word' else 'characters'}",
            "train layout": f"{train.inputs.shape[0]} streams x {train.inputs.shape[1]:,} steps, "
                            f"{len(loaders['train']):,} windows of {data.bptt}",
        }
        return TaskData(loaders["train"], loaders["val"], loaders["test"], artifacts, summary)

    @staticmethod
    def _build_cache(sources: dict[str, Path], settings: dict[str, Any]) -> dict[str, Any]:
        log.info("reading %s (once; later runs load the cache)", ", ".join(str(p) for p in sources.values()))
        if settings["level"] == "word":
            tokens = {split: read_words(path) for split, path in sources.items()}
            vocabulary = build_vocabulary(tokens["train"])  # the corpus' own vocabulary, <unk> included
            unknown = UNKNOWN if UNKNOWN in vocabulary else None
            where = {split: sources[split] for split in tokens}
        else:
            parts = split_by_fractions(read_text(sources["text"]), settings["val_fraction"], settings["test_fraction"])
            tokens = {split: list(text) for split, text in parts.items()}
            vocabulary = build_vocabulary(tokens["train"], unknown=UNKNOWN_CHAR)
            unknown = UNKNOWN_CHAR
            where = {split: f"the {split} part of {sources['text']}" for split in tokens}
        entry: dict[str, Any] = {"vocabulary": vocabulary, "unknown": unknown}
        for split in ("train", "val", "test"):
            if len(tokens[split]) < 2:
                raise DataError(f"{where[split]} holds {len(tokens[split])} token(s); at least 2 are needed to "
                                f"predict one")
            entry[split] = encode(tokens[split], vocabulary, unknown)
        return entry

    # -- model, loss, metrics ---------------------------------------------------------------
    def build_model(self, artifacts: dict[str, Any]) -> nn.Module:
        model = self.cfg.model
        kwargs = encoder_kwargs(model)
        del kwargs["bidirectional"]  # refused in _check_config
        return LanguageModel(vocab_size=artifacts["vocab_size"], embedding_dim=model.embedding_dim,
                             tie_weights=bool(model.get("tie_weights", False)),
                             adaptive_cutoffs=self._cutoffs(artifacts["vocab_size"]), ignore_index=IGNORE, **kwargs)

    def _cutoffs(self, vocab_size: int) -> list[int] | None:
        cutoffs = self.cfg.model.get("adaptive_cutoffs")
        if not cutoffs:
            return None
        cutoffs = list(cutoffs)
        if cutoffs != sorted(set(cutoffs)) or cutoffs[0] < 1 or cutoffs[-1] >= vocab_size:
            raise ConfigError(f"model.adaptive_cutoffs={cutoffs} is impossible for a vocabulary of {vocab_size:,}: "
                              f"give increasing word counts between 1 and {vocab_size - 1}, e.g. [2000, 10000]")
        hidden = self.cfg.model.hidden_size
        if hidden // 4 ** len(cutoffs) < 1:  # each rarer cluster's vectors are 4 times shorter
            raise ConfigError(f"model.adaptive_cutoffs={cutoffs} makes {len(cutoffs)} clusters of rarer words, too many "
                              f"for model.hidden_size={hidden} (the last would have vectors of size 0): use at most "
                              f"{max(int(math.log(hidden, 4)), 0)} cutoffs or a larger hidden size")
        return cutoffs

    def use_cache(self, size: int, theta: float, lam: float) -> None:
        """Evaluate from now on with a continuous cache over the model's predictions
        (seqmodels.models.cache; Grave et al. 2017); size 0: without one. Training never uses it."""
        require_int("--cache-size", size, minimum=0)
        require_number("--cache-theta", theta, 0.0, math.inf, low_open=True)
        require_number("--cache-lambda", lam, 0.0, 1.0, high_open=False)
        self.cache = ContinuousCache(size, theta, lam, IGNORE) if size else None

    def start_pass(self, model: nn.Module, split: str) -> None:
        self._state = None  # every pass reads its split from the beginning
        if self.cache is not None:
            self.cache.reset()

    def step(self, model: nn.Module, batch: TextWindow) -> StepOutput:
        if self.cache is not None and not model.training:
            log_probs, hidden, state = model.score(batch.inputs, self._state, batch.targets)
            probs = self.cache.probabilities(hidden, batch.targets, log_probs.exp())
            loss_sum = -probs[batch.targets != IGNORE].log().sum()
        else:
            loss_sum, state = model(batch.inputs, self._state, batch.targets)
        self._state = detach_state(state)
        count = int((batch.targets != IGNORE).sum())
        # Weighted by target tokens, so the trainer's epoch loss is the mean token loss too.
        return StepOutput(loss_sum / count, count, count, details=(loss_sum.item(), count))

    def evaluate(self, outputs: list[StepOutput]) -> dict[str, float]:
        count = sum(o.details[1] for o in outputs)
        if count == 0:
            return {"perplexity": float("nan"), "loss": float("nan")}
        loss = sum(o.details[0] for o in outputs) / count
        return {"perplexity": math.exp(loss) if loss < 700 else math.inf, "loss": loss}

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "bptt": self.cfg.data.bptt,
                "tie_weights": bool(self.cfg.model.get("tie_weights", False)),
                "adaptive_cutoffs": str(self.cfg.model.get("adaptive_cutoffs"))}

    # -- text in, text out ------------------------------------------------------------------
    @staticmethod
    def _render(ids: list[int], artifacts: dict[str, Any]) -> str:
        tokens = [artifacts["vocabulary"][i] for i in ids]
        return " ".join(tokens) if artifacts["level"] == "word" else "".join(tokens)

    def examples(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, str]:
        """A few samples from the whole distribution, from the same seed every epoch, so the
        logged texts show how the model's idea of the language evolves."""
        was_training = model.training
        model.eval()
        try:
            start = artifacts["vocabulary"].index(artifacts["start"])
            samples = sample(model, [start], SAMPLE_LENGTH[artifacts["level"]], num_samples=NUM_EXAMPLES,
                             top_k=artifacts["vocab_size"], generator=torch.Generator().manual_seed(self.cfg.seed))
        finally:
            model.train(was_training)
        blocks = []
        for number, ids in enumerate(samples, 1):
            text = self._render(ids, artifacts).replace(f" {EOS} ", "\n").replace(EOS, "\n")
            # indented: a markdown code block keeps spaces and line breaks as sampled
            blocks.append(f"sample {number}:\n\n" + "\n".join(f"    {line}" for line in text.split("\n")))
        return {"samples": "\n\n".join(blocks)}

    @torch.no_grad()
    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, *, temperature: float = 1.0,
                top_k: int = 10, length: int | None = None, seed: int | None = None, **options) -> dict[str, Any]:
        """The `top_k` most likely next tokens after `text` and a sampled continuation of `length`
        tokens (drawn from the `top_k` most likely at each step; top_k=1 is greedy). Options
        other tasks use are ignored."""
        length = SAMPLE_LENGTH[artifacts["level"]] if length is None else length
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ConfigError(f"temperature={temperature} is impossible; it must be > 0 (below 1 sharpens, "
                              f"above 1 flattens the distribution)")
        require_int("top_k", top_k)  # 1 = greedy
        require_int("length", length, minimum=0)
        model.eval()
        vocabulary = artifacts["vocabulary"]
        index = {token: i for i, token in enumerate(vocabulary)}
        if artifacts["level"] == "word":
            # PTB is lowercase: "The" is read as "the" when only that is a word of the corpus
            prompt = [word if word in index or word.lower() not in index else word.lower() for word in text.split()]
        else:
            prompt = list(text)
        unknown = [token for token in prompt if token not in index]
        if artifacts["unknown"] is None:
            prompt = [token for token in prompt if token in index]  # no unknown token to stand in for them
        context = [index[artifacts["start"]], *encode(prompt, vocabulary, artifacts["unknown"]).tolist()]
        device = next(model.parameters()).device
        logits, _ = model(torch.tensor([context], device=device))
        probabilities = logits[0, -1].float().softmax(-1).cpu()
        top = probabilities.topk(min(top_k, len(vocabulary)))
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        continuation = sample(model, context, length, temperature=float(temperature), top_k=top_k,
                              generator=generator)[0]
        return {
            "text": text,
            "next": [{"token": vocabulary[i], "probability": round(float(p), 4)}
                     for p, i in zip(top.values.tolist(), top.indices.tolist())],
            "continuation": self._render(continuation, artifacts),
            "unknown": unknown,
            "temperature": temperature,
            "top_k": top_k,
            "length": length,
            "seed": seed,
        }
