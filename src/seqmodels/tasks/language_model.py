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
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from seqmodels.checks import require_int, require_number
from seqmodels.data import imdb, ptb, wikitext2
from seqmodels.data.cache import cache_key, cached
from seqmodels.data.config import DataConfig
from seqmodels.data.corpus import (
    EOS,
    IGNORE,
    UNKNOWN,
    UNKNOWN_CHAR,
    StreamWindows,
    build_vocabulary,
    encode,
    lay_out,
    read_text,
    read_words,
    split_by_fractions,
)
from seqmodels.data.documents import capped_vocabulary, imdb_streams, word_file_tokens
from seqmodels.errors import ConfigError, DataError
from seqmodels.models import LanguageModelConfig
from seqmodels.models.cache import ContinuousCache
from seqmodels.models.language_model import LanguageModel, State, detach_state, draw, sample
from seqmodels.models.modes import evaluating
from seqmodels.models.onnx_graphs import OnnxGraph, language_model_step_graph
from seqmodels.schema import setting
from seqmodels.tasks.base import Answers, Batch, StepOutput, Task, TaskData
from seqmodels.tasks.vectors import pretrained_rows, read_vectors
from seqmodels.training.evaluation import evaluate_split

log = logging.getLogger("seqmodels")

WORD_CORPORA = {"ptb": ptb, "wikitext2": wikitext2}
CHARACTERS = "chars"  # data.dataset for the characters of the file at data.path
WORDS = "words"  # data.dataset for the words of the file at data.path
IMDB = "imdb"  # data.dataset for IMDB's training reviews, labelled and unlabelled (never the test reviews)
FILE_DATASETS = (CHARACTERS, WORDS)  # read data.path, split by data.val_fraction and data.test_fraction
SAMPLE_LENGTH = {"word": 30, "char": 200}  # tokens sampled for TensorBoard and by default in `predict`
NUM_EXAMPLES = 3
# evaluate.py --tune-cache: the grids searched on validation (see configure_evaluation)
CACHE_THETAS = (0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0, 5.0)
CACHE_LAMBDAS = (0.0, 0.05, 0.15, 0.2, 0.3, 0.4)
FIRST_LAMBDA = 0.1


@dataclass
class LanguageModelData(DataConfig):
    dataset: str = setting(
        "ptb",
        f"a word corpus ({', '.join(WORD_CORPORA)}), {IMDB} (its training and unsup reviews as a stream of "
        f"documents), {WORDS} or {CHARACTERS}: the words or characters of data.path",
        choices=(*WORD_CORPORA, IMDB, WORDS, CHARACTERS),
    )
    path: str | None = setting(None, "the UTF-8 text file of data.dataset=chars or words")
    val_fraction: float = setting(
        0.05,
        "chars, words: the share of the file after the training part, for validation; imdb: the share "
        "of reviews held out for validation",
        minimum=0.0,
        maximum=1.0,
        low_open=True,
    )
    test_fraction: float = setting(
        0.05,
        "chars, words: the share at the end of the file, for test; imdb: the share of reviews held out for test",
        minimum=0.0,
        maximum=1.0,
        low_open=True,
    )
    vocab_size: int | None = setting(
        None, "words, imdb: the most frequent training words kept (rarer ones are <unk>); null: all", minimum=1
    )
    min_freq: int = setting(1, "words, imdb: words seen fewer times in training are <unk>", minimum=1)
    reverse: bool = setting(
        False, "read every text backwards (last token first): a backward language model (docs/transfer.md)"
    )
    batch_size: int = setting(20, "parallel streams of text in training", minimum=1)
    eval_batch_size: int | None = setting(10, "streams in validation and test; null: batch_size", minimum=1)
    bptt: int = setting(
        35, "steps per window; the hidden state carries over (detached) into the next window", minimum=1
    )

    def check(self) -> None:
        if self.dataset in FILE_DATASETS and not self.path:
            raise ConfigError(f"task={self.dataset} needs a text file: add data.path=/path/to/file.txt")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"data.val_fraction={self.val_fraction} and data.test_fraction={self.test_fraction} "
                f"are impossible; each must be in (0, 1) and together below 1 (e.g. 0.05 and 0.05)"
            )


@dataclass
class TextWindow(Batch):
    inputs: torch.Tensor  # (streams, steps) token ids
    targets: torch.Tensor  # (streams, steps): the inputs shifted by one; IGNORE past the end of the text
    # the targets that are tokens, counted where the window is assembled (on the CPU) and carried along
    # by `to`, so that a training step counts them without reading the device
    num_targets: int = -1

    host_fields = ()  # no lengths: every stream runs the whole window

    def __post_init__(self) -> None:
        if self.num_targets < 0:
            self.num_targets = int((self.targets != IGNORE).sum())


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

    def _settings(self) -> dict[str, Any]:
        """What the cached id streams depend on (the layout does not: it is cheap to redo)."""
        data = self.data_config
        if data.dataset in WORD_CORPORA:
            return {"dataset": data.dataset, "level": "word"}
        if data.dataset in (IMDB, WORDS):
            return {
                "dataset": data.dataset,
                "level": "word",
                "vocab_size": data.vocab_size,
                "min_freq": data.min_freq,
                "val_fraction": data.val_fraction,
                "test_fraction": data.test_fraction,
            }
        return {
            "dataset": CHARACTERS,
            "level": "char",
            "val_fraction": data.val_fraction,
            "test_fraction": data.test_fraction,
        }

    # -- data -------------------------------------------------------------------------------
    def _sources(self, settings: dict[str, Any]) -> dict[str, Path]:
        data = self.data_config
        if settings["dataset"] in WORD_CORPORA:
            return WORD_CORPORA[settings["dataset"]].locate(Path(data.root), allow_download=data.download)
        if settings["dataset"] == IMDB:
            return {"reviews": imdb.locate(Path(data.root), allow_download=data.download)}
        path = Path(data.path or "").expanduser()
        if data.path is None or not path.is_file():
            raise DataError(f"data.path={data.path} is not a file; point it at a UTF-8 text file")
        return {"text": path.resolve()}

    def check_config(self) -> None:
        if self.model_config.pretrained_vectors and self.data_config.dataset == CHARACTERS:
            raise ConfigError(
                f"model.pretrained_vectors={self.model_config.pretrained_vectors} holds word vectors, "
                f"but data.dataset={CHARACTERS} models characters; drop model.pretrained_vectors"
            )

    def prepare(self) -> TaskData:
        settings = self._settings()
        data = self.data_config
        sources = self._sources(settings)
        vectors = read_vectors(self.model_config, data)
        key = cache_key(list(sources.values()), {**settings, "vocabulary": "most frequent first"})
        name = settings["dataset"]
        entry, _ = cached(Path(data.cache_dir), name, key, lambda: self._build_cache(sources, settings))
        if vectors is not None:
            # The corpus' own vocabulary, never extended: the output layer predicts exactly these words.
            self.pretrained, _ = pretrained_rows(vectors, entry["vocabulary"], frozen=0, train_ids=entry["train"])
        # a backward language model reads each split from its end (documents in reverse order, each backwards)
        ids = {split: entry[split].flip(0) if data.reverse else entry[split] for split in ("train", "val", "test")}
        streams = {"train": lay_out(ids["train"], data.batch_size)}
        for split in ("val", "test"):
            streams[split] = lay_out(ids[split], data.eval_batch_size or data.batch_size)
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
            **(
                {"documents train / val / test": " / ".join(f"{n:,}" for n in entry["documents"].values())}
                if "documents" in entry
                else {}
            ),
            **({"direction": "backward (data.reverse=true): every text is read from its end"} if data.reverse else {}),
        }
        return TaskData(loaders["train"], loaders["val"], loaders["test"], artifacts, summary)

    @staticmethod
    def _build_cache(sources: dict[str, Path], settings: dict[str, Any]) -> dict[str, Any]:
        log.info("reading %s (once; later runs load the cache)", ", ".join(str(p) for p in sources.values()))
        if settings["dataset"] == IMDB:
            return imdb_streams(
                sources["reviews"],
                vocab_size=settings["vocab_size"],
                min_freq=settings["min_freq"],
                val_fraction=settings["val_fraction"],
                test_fraction=settings["test_fraction"],
            )
        if settings["dataset"] == WORDS:
            tokens = word_file_tokens(sources["text"], settings["val_fraction"], settings["test_fraction"])
            vocabulary = capped_vocabulary(tokens["train"], settings["vocab_size"], settings["min_freq"])
            unknown: str | None = UNKNOWN
            where: dict[str, Any] = {split: f"the {split} part of {sources['text']}" for split in tokens}
        elif settings["level"] == "word":
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
                raise DataError(
                    f"{where[split]} holds {len(tokens[split])} token(s); at least 2 are needed to predict one"
                )
            entry[split] = encode(tokens[split], vocabulary, unknown)
        return entry

    # -- model, loss, metrics ---------------------------------------------------------------
    def build_model(self, artifacts: dict[str, Any]) -> nn.Module:
        model = self.model_config
        cutoffs = model.adaptive_cutoffs or []
        if self.data_config.dataset == WORDS and cutoffs and cutoffs[-1] >= artifacts["vocab_size"]:
            # a file's vocabulary size is not known in advance: keep the clusters it can fill
            kept = [cutoff for cutoff in cutoffs if cutoff < artifacts["vocab_size"]] or None
            log.info(
                "model.adaptive_cutoffs=%s for a vocabulary of %s words: %s",
                cutoffs,
                f"{artifacts['vocab_size']:,}",
                f"using {kept}" if kept else "a full softmax",
            )
            model = replace(model, adaptive_cutoffs=kept)
        return model.build(artifacts["vocab_size"], ignore_index=IGNORE, pretrained=self.pretrained)

    def use_cache(self, size: int, theta: float, lam: float) -> None:
        """Evaluate from now on with a continuous cache over the model's predictions
        (seqmodels.models.cache; Grave et al. 2017); size 0: without one. Training never uses it."""
        require_int("--cache-size", size, minimum=0)
        require_number("--cache-theta", theta, 0.0, math.inf, low_open=True)
        require_number("--cache-lambda", lam, 0.0, 1.0, high_open=False)
        self.cache = ContinuousCache(size, theta, lam, IGNORE) if size else None

    @classmethod
    def add_predict_options(cls, group) -> None:
        group.add_argument("--temperature", type=float, help="below 1 sharpens, above 1 flattens (default 1)")
        group.add_argument(
            "--top-k",
            type=int,
            help="list the K most likely next tokens and sample only among the "
            "K most likely at each step; 1 is greedy (default 10)",
        )
        group.add_argument("--length", type=int, help="tokens to sample (default 30 words or 200 characters)")
        group.add_argument("--seed", type=int, help="the same seed gives the same continuation (default: random)")

    @classmethod
    def add_evaluate_options(cls, group) -> None:
        group.add_argument(
            "--cache-size",
            type=int,
            help="remember this many earlier hidden states per stream (e.g. 2000): a continuous cache",
        )
        group.add_argument("--cache-theta", type=float, help="how sharply the cache points (default 0.3)")
        group.add_argument("--cache-lambda", type=float, help="the cache's weight in the mixture (default 0.1)")
        group.add_argument(
            "--tune-cache",
            action="store_const",
            const=True,
            help=f"choose theta in {CACHE_THETAS}, then lambda in {(FIRST_LAMBDA, *CACHE_LAMBDAS)}, "
            f"on val (needs --cache-size)",
        )

    def check_evaluation_options(
        self, *, cache_size: int | None = None, tune_cache: bool | None = None, **options: Any
    ) -> None:
        if tune_cache and not cache_size:
            raise ConfigError("--tune-cache needs --cache-size N (e.g. 2000): how many states the cache remembers")

    def configure_evaluation(
        self,
        model: nn.Module,
        data: TaskData,
        device: torch.device,
        *,
        cache_size: int | None = None,
        cache_theta: float | None = None,
        cache_lambda: float | None = None,
        tune_cache: bool | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """With a cache size: evaluate with a continuous cache of (size, theta, lambda), or with
        `tune_cache` the theta and lambda that are best on validation (a grid, one pass each: theta
        along its grid with lambda at 0.1, then lambda along its grid with the best theta, and
        lambda 0, so the search never ends worse than the model alone)."""
        if not cache_size:
            return {}
        theta, lam = 0.3 if cache_theta is None else cache_theta, 0.1 if cache_lambda is None else cache_lambda
        report: dict[str, Any] = {}
        if tune_cache:
            search: list[dict[str, float]] = []

            def validate(theta: float, lam: float) -> dict[str, float]:
                self.use_cache(cache_size, theta, lam)
                val = evaluate_split(self, model, data.val, data.artifacts, "val", device)[self.monitor]
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
    def _render(ids: list[int], artifacts: dict[str, Any]) -> str:
        tokens = [artifacts["vocabulary"][i] for i in ids]
        return " ".join(tokens) if artifacts["level"] == "word" else "".join(tokens)

    def examples(self, model: nn.Module, artifacts: dict[str, Any]) -> dict[str, str]:
        """A few samples from the whole distribution, from the same seed every epoch, so the
        logged texts show how the model's idea of the language evolves."""
        with evaluating(model):
            start = artifacts["vocabulary"].index(artifacts["start"])
            samples = sample(
                cast(LanguageModel, model),
                [start],
                SAMPLE_LENGTH[artifacts["level"]],
                num_samples=NUM_EXAMPLES,
                top_k=artifacts["vocab_size"],
                generator=torch.Generator().manual_seed(self.cfg.seed),
            )
        blocks = []
        for number, ids in enumerate(samples, 1):
            text = self._render(ids, artifacts).replace(f" {EOS} ", "\n").replace(EOS, "\n")
            # indented: a markdown code block keeps spaces and line breaks as sampled
            blocks.append(f"sample {number}:\n\n" + "\n".join(f"    {line}" for line in text.split("\n")))
        return {"samples": "\n\n".join(blocks)}

    def predict(self, model: nn.Module, artifacts: dict[str, Any], text: str, **options: Any) -> dict[str, Any]:
        return self.predict_batch(model, artifacts, [text], **options).results[0]

    @torch.no_grad()
    def predict_batch(
        self,
        model: nn.Module,
        artifacts: dict[str, Any],
        texts: list[str],
        *,
        temperature: float = 1.0,
        top_k: int = 10,
        length: int | None = None,
        seed: int | None = None,
        **options: Any,
    ) -> Answers:
        """For each text, the `top_k` most likely next tokens and a sampled continuation of `length`
        tokens (drawn from the `top_k` most likely at each step; top_k=1 is greedy). Each text draws
        from its own generator, seeded with `seed`, so a text continues as it would alone. Options
        other tasks use are ignored."""
        length = SAMPLE_LENGTH[artifacts["level"]] if length is None else length
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ConfigError(
                f"temperature={temperature} is impossible; it must be > 0 (below 1 sharpens, "
                f"above 1 flattens the distribution)"
            )
        require_int("top_k", top_k)  # 1 = greedy
        require_int("length", length, minimum=0)
        model.eval()
        vocabulary = artifacts["vocabulary"]
        index = {token: i for i, token in enumerate(vocabulary)}
        prompts = [self._prompt(text, artifacts, index) for text in texts]
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
                    "continuation": self._render(continuations[r], artifacts),
                    "unknown": prompts[i][1],
                    "temperature": temperature,
                    "top_k": top_k,
                    "length": length,
                    "seed": seed,
                }
        return Answers(results, tokens=sum(len(context) for context, _ in prompts))

    @staticmethod
    def _prompt(text: str, artifacts: dict[str, Any], index: dict[str, int]) -> tuple[list[int], list[str]]:
        """The ids the model reads for `text` (the start token first) and its tokens the vocabulary lacks."""
        if artifacts["level"] == "word":
            # PTB is lowercase: "The" is read as "the" when only that is a word of the corpus
            prompt = [word if word in index or word.lower() not in index else word.lower() for word in text.split()]
        else:
            prompt = list(text)
        unknown = [token for token in prompt if token not in index]
        if artifacts["unknown"] is None:
            prompt = [token for token in prompt if token in index]  # no unknown token to stand in for them
        fallback = index.get(artifacts["unknown"], -1)  # every token is known when there is no unknown token
        return [index[artifacts["start"]], *(index.get(token, fallback) for token in prompt)], unknown

    def export_graph(self, model: nn.Module, artifacts: dict[str, Any]) -> OnnxGraph:
        graph = language_model_step_graph(model, artifacts["vocab_size"])
        graph.sidecar.update(
            {
                "vocabulary": artifacts["vocabulary"],
                "level": artifacts["level"],
                "start": artifacts["start"],
                "unknown": artifacts["unknown"],
            }
        )
        return graph
