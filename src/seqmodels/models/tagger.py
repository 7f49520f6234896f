"""Many-to-many: a tag for every token.

    word embedding [+ character CNN] [+ word shape] -> recurrent encoder [+ attention over the
    sequence] -> linear emissions [-> CRF]

Without a CRF each token's tag is the argmax of its emissions and the loss is per-token
cross-entropy; with one, tags are decoded jointly (Viterbi) and the loss is the CRF's
sentence negative log-likelihood. Given the tag transitions the scheme forbids (`I-PER`
after `O` in IOB2; in IOBES also a sentence that ends inside a span), decoding returns the best
sequence without them: the likeliest under the per-token distributions, or the CRF's best among
the valid ones. Either loss is divided by
the number of real tokens, so its scale does not depend on the batch's sentence lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqmodels.errors import ConfigError
from seqmodels.models.crf import LinearChainCRF, viterbi
from seqmodels.models.embedding import PretrainedRows, WordEmbedding
from seqmodels.models.encoder import EncoderConfig, RecurrentEncoder, length_mask
from seqmodels.schema import setting

IGNORED_TAG = -100  # the tag of a padding position in the per-token loss (F.cross_entropy's ignore_index)


@dataclass
class TaggerConfig(EncoderConfig):
    """`model.*` of a many-to-many task: the encoder, the word features and the output layer."""

    crf: bool = setting(False, "a CRF output layer: tags decoded jointly (Viterbi) instead of one by one")
    valid_tags: bool = setting(
        False,
        "span tags: decode the best sequence of valid tags (IOB2: no I-PER after O), not each token's argmax",
    )
    char_dim: int = setting(
        0, "character embedding size of a character CNN per word; 0: no character features", minimum=0
    )
    char_filters: int = setting(
        50, "CNN filters: the size of each word's spelling vector (with char_dim > 0)", minimum=1
    )
    char_kernel_size: int = setting(3, "characters each filter sees (odd)", minimum=1)
    shape_dim: int = setting(0, "size of a word-shape vector (capitals, digits); 0: none", minimum=0)
    attention_dim: int = setting(
        0, "> 0: each token also sees an attention summary of its whole sequence (query/key size); 0: none", minimum=0
    )
    word_dropout: float = setting(
        0.0, "rate at which training words become <unk>, so <unk> learns unseen words", minimum=0.0, maximum=1.0
    )
    singleton_dropout: float = setting(
        0.0, "rate for the words training saw once (Lample et al. 0.5); needs data.min_freq=1", minimum=0.0, maximum=1.0
    )

    def check(self) -> None:
        super().check()
        if self.char_dim > 0 and self.char_kernel_size % 2 == 0:
            raise ConfigError(
                f"model.char_kernel_size={self.char_kernel_size} must be odd (3, 5, ...) "
                f"so each filter centres on a character"
            )

    def build(
        self,
        vocab_size: int,
        num_tags: int,
        *,
        num_chars: int,
        num_shapes: int,
        unk_id: int,
        singletons_from: int,
        forbidden: Sequence[Any] | None,
        frozen_words: int = 0,
        pretrained: PretrainedRows | None = None,
    ) -> SequenceTagger:
        """`forbidden`: the tag transitions, first tags and last tags the scheme forbids (see
        `SequenceTagger`), used with `valid_tags`;
        `frozen_words`: the last ids are pretrained words beyond the training vocabulary (`models.embedding`)."""
        model = SequenceTagger(
            self,
            vocab_size,
            num_tags,
            num_chars=num_chars,
            num_shapes=num_shapes,
            unk_id=unk_id,
            singletons_from=singletons_from,
            forbidden=forbidden,
            frozen_words=frozen_words,
        )
        self.start_embedding(model.embedding, pretrained)
        return model

    def describe(self) -> str:
        extras = [
            name
            for name, on in (
                ("CRF", self.crf),
                (f"char CNN {self.char_dim}", self.char_dim),
                (f"shape {self.shape_dim}", self.shape_dim),
                (f"attention {self.attention_dim}", self.attention_dim),
                ("valid tags", self.valid_tags),
            )
            if on
        ]
        return ", ".join([super().describe(), *extras])


class CharCNN(nn.Module):
    """A word's spelling as a vector: character embeddings, a convolution over neighbouring
    characters, and the maximum of each filter over the word's real characters (Ma & Hovy
    2016). Spelling helps with words the vocabulary has never seen, and with capitals.

    Padding characters are zeroed before the convolution and left out of the maximum, so a
    word's vector does not depend on the longest word of its batch."""

    def __init__(self, num_chars: int, char_dim: int, num_filters: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, num_filters, kernel_size, padding=kernel_size // 2)
        self.output_size = num_filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """chars: (B, T, W) character ids, 0-padded. Returns (B, T, num_filters); 0 for padding words."""
        batch, steps, width = chars.shape
        chars = chars.reshape(batch * steps, width)
        real = (chars != 0).unsqueeze(1)  # (N, 1, W)
        embedded = self.embedding(chars).transpose(1, 2) * real  # (N, char_dim, W)
        filters = self.conv(embedded).masked_fill(~real, float("-inf")).amax(dim=2)
        filters = filters.masked_fill(~real.any(dim=2), 0.0)  # padding words have no characters
        return filters.view(batch, steps, -1)


class SequenceAttention(nn.Module):
    """Every token's view of its whole sequence: a weighted mean of the encoder's outputs at
    all real positions, weighted by a softmax of scaled dot products between learned queries
    and keys (one head). A recurrent state carries a name's earlier mentions only faintly over
    hundreds of tokens; with a whole document as the sequence, attention reaches the clearer
    mentions of the same name wherever they are (Xu et al. 2018, "global attention").

    Keys at padding positions get no weight, so a sequence's outputs do not depend on its batch."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(size, dim)
        self.key = nn.Linear(size, dim)
        self.scale = dim**-0.5

    def forward(self, outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """outputs: (B, T, size); mask: (B, T) real positions. Returns (B, T, size)."""
        scores = self.query(outputs) @ self.key(outputs).transpose(1, 2) * self.scale  # (B, T, T)
        weights = scores.masked_fill(~mask.unsqueeze(1), float("-inf")).softmax(dim=-1)
        return weights @ outputs


class SequenceTagger(nn.Module):
    """The tagger `config` (`model.*`) describes, over `vocab_size` words and `num_tags` tags.

    What the data decides: `num_chars` and `num_shapes` (the sizes of the character and shape
    vocabularies, read with `model.char_dim` and `model.shape_dim`), `unk_id`, `singletons_from` (the
    word ids from here on were seen once in training; None: none), `frozen_words` (the last ids are
    pretrained words beyond the training vocabulary) and `forbidden`: (transitions (K, K): may tag j not
    follow tag i, first (K,): may a tag not open a sentence[, last (K,): may it not close one]) as
    booleans, applied in decoding with `model.valid_tags`; None: nothing is forbidden."""

    transition_penalty: torch.Tensor | None  # buffers, derived from the tag names
    start_penalty: torch.Tensor | None
    end_penalty: torch.Tensor | None

    def __init__(
        self,
        config: TaggerConfig,
        vocab_size: int,
        num_tags: int,
        *,
        num_chars: int = 0,
        num_shapes: int = 0,
        unk_id: int = 1,
        singletons_from: int | None = None,
        forbidden: Sequence[Any] | None = None,
        frozen_words: int = 0,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        char_dim, shape_dim, attention_dim = config.char_dim, config.shape_dim, config.attention_dim
        self.embedding = WordEmbedding(vocab_size, config.embedding_dim, padding_idx, frozen_words)
        self.chars = (
            CharCNN(num_chars, char_dim, config.char_filters, config.char_kernel_size) if char_dim > 0 else None
        )
        # a word's shape (capitals, digits) as a small vector: what <unk> and lowercased words lose
        self.shapes = nn.Embedding(num_shapes, shape_dim, padding_idx=0) if shape_dim > 0 else None
        # Training words turn into <unk> at word_dropout, and the words training saw only once
        # (ids from singletons_from on) at singleton_dropout (Lample et al. 2016: 0.5), so <unk>
        # learns what the words it stands for in validation and test look like: mostly names.
        self.word_dropout, self.padding_idx, self.unk_id = config.word_dropout, padding_idx, unk_id
        self.singleton_dropout = config.singleton_dropout
        self.singletons_from = vocab_size if singletons_from is None else singletons_from
        self.dropout = nn.Dropout(config.dropout)
        input_size = (
            config.embedding_dim
            + (self.chars.output_size if self.chars is not None else 0)
            + (shape_dim if self.shapes is not None else 0)
        )
        self.encoder = RecurrentEncoder(input_size=input_size, **config.encoder_kwargs())
        size = self.encoder.output_size
        # each token's output and its attention summary of the sequence, side by side
        self.attention = SequenceAttention(size, attention_dim) if attention_dim > 0 else None
        self.head = nn.Linear(size * (2 if self.attention is not None else 1), num_tags)
        self.crf = LinearChainCRF(num_tags) if config.crf else None

        # Scores added in decoding: -inf for the tag transitions (K, K), first tags and last tags (K,)
        # it must never output (e.g. I-PER after O), 0 elsewhere; None: each token's own best tag.
        # Derived from the tag names, so not saved.
        def penalty(rule: Any) -> torch.Tensor:  # (K, K) or (K,) booleans
            forbids = torch.tensor(rule, dtype=torch.bool)
            return torch.zeros(forbids.shape).masked_fill(forbids, float("-inf"))

        penalties: tuple[torch.Tensor | None, ...] = (None, None, None)
        if forbidden is not None and config.valid_tags:
            penalties = tuple(map(penalty, [*forbidden, [False] * num_tags][:3]))  # no last tags: any
        for name, value in zip(("transition_penalty", "start_penalty", "end_penalty"), penalties):
            self.register_buffer(name, value, persistent=False)

    def forward(
        self,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        chars: torch.Tensor | None = None,
        shapes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens: (B, T) right-padded ids; lengths: (B,) on any device (a batch's stay on the CPU); chars:
        (B, T, W) and shapes (B, T) when the model uses them. Returns (B, T, num_tags) emission scores."""
        if self.training and (self.word_dropout > 0 or self.singleton_dropout > 0):
            rate = torch.where(
                tokens >= self.singletons_from, max(self.word_dropout, self.singleton_dropout), self.word_dropout
            )
            dropped = (torch.rand(tokens.shape, device=tokens.device) < rate) & (tokens != self.padding_idx)
            tokens = tokens.masked_fill(dropped, self.unk_id)
        parts = [self.embedding(tokens)]
        if self.chars is not None:
            if chars is None:
                raise ValueError("this tagger reads characters: pass chars (B, T, W)")
            parts.append(self.chars(chars))
        if self.shapes is not None:
            if shapes is None:
                raise ValueError("this tagger reads word shapes: pass shapes (B, T)")
            parts.append(self.shapes(shapes))
        features = torch.cat(parts, dim=-1)
        outputs = self.encoder(self.dropout(features), lengths).outputs
        if self.attention is not None:
            mask = length_mask(lengths.to(outputs.device, non_blocking=True), outputs.shape[1])
            outputs = torch.cat([outputs, self.attention(outputs, mask)], dim=-1)
        return self.head(self.dropout(outputs))

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean loss per real token; padding positions (whatever their tags) count for nothing. The padding is
        masked, never cut out: selecting the real positions would wait for the device to count them."""
        mask = length_mask(lengths.to(emissions.device, non_blocking=True), emissions.shape[1])
        if self.crf is not None:
            return self.crf.nll(emissions, tags, mask).sum() / mask.sum()
        ignored = tags.masked_fill(~mask, IGNORED_TAG)
        return F.cross_entropy(emissions.flatten(0, 1).float(), ignored.flatten(), ignore_index=IGNORED_TAG)

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) predicted tag ids; padding positions hold 0."""
        mask = length_mask(lengths.to(emissions.device, non_blocking=True), emissions.shape[1])
        penalties = None
        if self.transition_penalty is not None and self.start_penalty is not None and self.end_penalty is not None:
            penalties = (self.transition_penalty, self.start_penalty, self.end_penalty)
        if self.crf is not None:
            return self.crf.viterbi(emissions, mask, penalties)
        if penalties is not None:
            # the likeliest sequence of valid tags under the per-token distributions
            return viterbi(emissions.float().log_softmax(-1), mask, *penalties)
        return emissions.argmax(-1).masked_fill(~mask, 0)
