"""Translation: the parallel reader and Multi30k files, subword round trips, the encoder-decoder
(shapes, padding, attention masking), greedy and beam search against brute force, sacreBLEU scores,
one-line errors, and train/predict/evaluate end to end on tiny gzip fixtures."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest
import sacrebleu
import torch
import torch.nn.functional as F

from conftest import ROOT, cli_env, run_script, train
from helpers.checkpoints import layout, save_run
from helpers.parallel_text import sentence_pair, translation_task, write_gz, write_multi30k
from seqmodels import load_run
from seqmodels.config import compose_config
from seqmodels.data import multi30k
from seqmodels.data.batching import pad_right
from seqmodels.data.encoding import TextEncoding
from seqmodels.data.parallel import read_lines, read_parallel
from seqmodels.data.subword import BOS_ID, EOS_ID, decode_ids, encode_texts, train_subword_tokenizer
from seqmodels.data.text import PAD_ID
from seqmodels.data.translation_data import TranslationArtifacts
from seqmodels.errors import ConfigError, DataError
from seqmodels.models.search import beam_search, greedy_search, length_penalty
from seqmodels.models.seq2seq import Seq2Seq, Seq2SeqConfig
from seqmodels.tasks.base import StepOutput
from seqmodels.tasks.translation import TranslationBatch
from seqmodels.tasks.translation_metrics import corpus_scores, signatures
from seqmodels.train import check_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mt_root(tmp_path_factory) -> Path:
    return write_multi30k(tmp_path_factory.mktemp("mt_data"))


@pytest.fixture()
def mt_env(mt_root, tmp_path) -> dict[str, str]:
    return cli_env(mt_root, tmp_path / "cache")


# -- reading -------------------------------------------------------------------------------------
def test_parallel_files_are_read_gz_or_plain_and_aligned(tmp_path):
    source = write_gz(tmp_path / "train.de.gz", ["Ein Mann.", "  Eine Frau.  ", "", "Ein Hund."])
    target = tmp_path / "train.en"
    target.write_bytes(b"A man.\r\nA woman.\r\nA child.\r\n\r\n")  # CRLF, and the empty line on the other side
    text = read_parallel(source, target)
    assert text.sources == ["Ein Mann.", "Eine Frau."] and text.targets == ["A man.", "A woman."]
    assert text.skipped_empty == 2  # an empty side on either side: the pair is skipped and counted


def test_different_line_counts_name_both_files_and_counts(tmp_path):
    source = write_gz(tmp_path / "val.de.gz", ["a", "b", "c"])
    target = write_gz(tmp_path / "val.en.gz", ["a", "b"])
    with pytest.raises(DataError) as error:
        read_parallel(source, target)
    message = str(error.value)
    assert f"{source} has 3 lines but {target} has 2" in message and "\n" not in message


def test_bytes_that_are_not_utf8_are_one_line_with_file_and_line(tmp_path):
    path = tmp_path / "train.de"
    path.write_bytes("Ein Mann.\nMüller\n".encode("latin-1"))
    with pytest.raises(DataError) as error:
        read_lines(path)
    assert f"{path}:2: byte 2 (0xfc) is not utf-8; name the file's encoding with data.encoding" in str(error.value)
    assert "\n" not in str(error.value)
    assert read_lines(path, TextEncoding("latin-1")) == ["Ein Mann.", "M\xfcller"]


def test_a_corpus_is_decoded_by_data_encoding_which_keys_its_cache(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = random.Random(0)
    for split, count in (("train", 40), ("val", 4), ("test", 4)):
        pairs = [sentence_pair(rng) for _ in range(count)]
        (corpus / f"{split}.de").write_bytes("".join(f"{de}\n" for de, _ in pairs).encode("latin-1"))
        (corpus / f"{split}.en").write_text("".join(f"{en}\n" for _, en in pairs), encoding="utf-8")

    def showcase(*overrides: str) -> list[str]:
        keys = ["task=translation", f"data.path={corpus}", f"data.cache_dir={tmp_path / 'cache'}", "data.vocab_size=40"]
        task = check_config(compose_config([*keys, *overrides]))
        return [source for source, _ in task.prepare().artifacts["showcase"]]

    with pytest.raises(DataError) as refused:
        showcase()
    lines = (corpus / "train.de").read_bytes().split(b"\n")
    number, line = next((number, line) for number, line in enumerate(lines, 1) if not line.isascii())
    column = next(i for i, byte in enumerate(line) if byte >= 0x80)
    assert str(refused.value) == (
        f"{corpus.resolve() / 'train.de'}:{number}: byte {column + 1} (0x{line[column]:02x}) is not utf-8; name the "
        f"file's encoding with data.encoding=ENCODING (e.g. latin-1), convert the file (iconv -f ENCODING -t utf-8), "
        f"or read on with data.encoding_errors=replace"
    )
    replaced = showcase("data.encoding_errors=replace")
    assert any("\ufffd" in source for source in replaced)
    # the same files and cache: the decoding is part of the cache key, so latin-1 is read anew
    decoded = showcase("data.encoding=latin-1")
    assert any(character in source for source in decoded for character in "äöüß")
    assert [source.translate({ord(c): "\ufffd" for c in "äöüß"}) for source in decoded] == replaced


def test_a_truncated_gzip_file_is_one_line(tmp_path):
    path = write_gz(tmp_path / "train.de.gz", ["Ein Mann."] * 50)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="not a complete gzip file"):
        read_lines(path)


def test_multi30k_files_are_found_or_downloaded_with_their_checksum(tmp_path, monkeypatch):
    write_multi30k(
        tmp_path, {"train": 2, "val": 2, "test_2016_flickr": 2, "test_2017_flickr": 2, "test_2017_mscoco": 2}
    )  # test_2018_flickr is missing
    with pytest.raises(DataError) as error:
        multi30k.locate(tmp_path, "de", "en", allow_download=False)
    assert (
        "test_2018_flickr.de.gz not found" in str(error.value)
        and "raw.githubusercontent.com/multi30k" in str(error.value)
        and "\n" not in str(error.value)
    )
    fetched = []

    def fake_download(url, destination, *, sha256=None, manual_hint="", md5=None):
        fetched.append((url, destination.name, sha256))
        write_gz(destination, ["x", "y"])
        return destination

    monkeypatch.setattr(multi30k, "download", fake_download)
    found = multi30k.locate(tmp_path, "de", "en", allow_download=True)
    assert set(found) == {"train", "val", "test", *multi30k.EXTRA_TESTS}
    assert found["test"][0].name == "test_2016_flickr.de.gz"
    assert [name for _, name, _ in fetched] == ["test_2018_flickr.de.gz", "test_2018_flickr.en.gz"]
    url, name, sha = fetched[0]
    assert url.endswith(f"/{multi30k.COMMIT}/data/task1/raw/{name}") and sha == multi30k.SHA256[name]

    fetched.clear()  # download_data.py multi30k: every split in every language, only the missing ones fetched
    files = multi30k.fetch_all(tmp_path)
    assert len(files) == 18 and all(path.is_file() for path in files)
    assert [name for _, name, _ in fetched] == ["test_2018_flickr.fr.gz"]
    assert all(sha == multi30k.SHA256[name] for _, name, sha in fetched)


@pytest.mark.parametrize("model", ["bpe", "unigram"])
def test_subwords_detokenize_exactly_and_keep_the_special_ids(model):
    rng = random.Random(1)
    train = [sentence_pair(rng)[0] for _ in range(300)]
    tokenizer = train_subword_tokenizer(train, model=model, vocab_size=60)
    unseen = ["Ein Hund fährt (schnell) im Park, 3 Mal!", "Eine Frau sieht ein Fahrrad."]
    ids = encode_texts(tokenizer, unseen)
    assert all(i >= 1 for row in ids for i in row) and BOS_ID not in ids[0] and EOS_ID not in ids[0]
    assert decode_ids(tokenizer, ids)[1] == unseen[1]
    assert decode_ids(tokenizer, [[BOS_ID, *ids[1], EOS_ID, PAD_ID]]) == [unseen[1]]  # specials are left out
    assert [tokenizer.token_to_id(t) for t in ("<pad>", "<unk>", "<s>", "</s>")] == [0, 1, 2, 3]


# -- the model -----------------------------------------------------------------------------------
VARIANTS = [
    ("bahdanau", {}),
    ("luong", {}),
    ("luong", {"input_feeding": False}),
    ("luong", {"luong_score": "dot"}),
    ("none", {}),
    ("none", {"context": False, "reverse_source": True}),
]


def tiny_model(
    attention: str = "bahdanau",
    cell: str = "gru",
    bidirectional: bool = True,
    layers: int = 2,
    source_vocab: int = 13,
    target_vocab: int = 11,
    seed: int = 0,
    **extra,
) -> Seq2Seq:
    torch.manual_seed(seed)
    sizes = {"embedding_dim": 8, "hidden_size": 6, "num_layers": layers, "dropout": 0.0}
    config = Seq2SeqConfig(cell=cell, bidirectional=bidirectional, attention=attention, **sizes, **extra)
    return config.build(source_vocab, target_vocab, bos_id=BOS_ID, eos_id=EOS_ID).eval()  # build() checks it


def batch_of(sources: list[list[int]], targets: list[list[int]]):
    source, lengths = pad_right([torch.tensor(s) for s in sources])
    target_in, _ = pad_right([torch.tensor([BOS_ID, *t]) for t in targets])
    return source, lengths, target_in


SOURCES = [[5, 6, 7], [4, 5, 6, 7, 8, 9, 10], [11]]
TARGETS = [[4, 5, 6, 7], [8, 4], [9, 9, 9, 9, 9, 9]]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("attention,extra", VARIANTS)
def test_shapes_and_padding_invariance(cell, attention, extra):
    """Each sentence's logits are those it gets alone: padding changes nothing, on either side."""
    model = tiny_model(attention, cell, **extra)
    source, lengths, target_in = batch_of(SOURCES, TARGETS)
    logits = model(source, lengths, target_in)
    assert logits.shape == (3, target_in.shape[1], 11)
    for row, (s, t) in enumerate(zip(SOURCES, TARGETS)):
        alone = model(*batch_of([s], [t]))[0]
        torch.testing.assert_close(logits[row, : len(t) + 1], alone, atol=1e-5, rtol=1e-4)
    mask = target_in != PAD_ID
    positions = mask.flatten().nonzero().squeeze(1)  # the real positions, as a batch carries them
    torch.testing.assert_close(model(source, lengths, target_in, positions), logits[mask])


@pytest.mark.parametrize("attention,extra", [v for v in VARIANTS if v[0] != "none"])
def test_attention_gives_padding_no_weight_and_reads_no_padding(attention, extra):
    model = tiny_model(attention, **extra)
    source, lengths, target_in = batch_of(SOURCES, TARGETS)
    memory = model.encode(source, lengths)
    _, weights = model.decode(memory, target_in)
    assert weights.shape == (3, target_in.shape[1], source.shape[1])
    padding = ~memory.mask.unsqueeze(1).expand_as(weights)
    assert float(weights[padding].detach().abs().max()) == 0.0
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))
    noisy = source.masked_fill(~memory.mask, 12)  # other ids where the padding was
    torch.testing.assert_close(model(noisy, lengths, target_in), model(source, lengths, target_in))


@pytest.mark.parametrize("attention,extra", VARIANTS)
def test_decoding_steps_score_as_teacher_forcing_does(attention, extra):
    """`step` (decoding) and `forward` (training, all steps at once where it can) agree."""
    model = tiny_model(attention, "lstm", **extra)
    source, lengths, target_in = batch_of(SOURCES, TARGETS)
    expected = model(source, lengths, target_in).log_softmax(-1)
    memory = model.encode(source, lengths)
    state = model.initial_state(memory)
    for t in range(target_in.shape[1]):
        log_probs, state, _ = model.step(memory, state, target_in[:, t])
        torch.testing.assert_close(log_probs, expected[:, t], atol=1e-5, rtol=1e-4)


def test_teacher_forcing_below_one_feeds_the_models_own_tokens():
    model = tiny_model("luong", input_feeding=False, teacher_forcing=0.0).train()
    source, lengths, target_in = batch_of(SOURCES, TARGETS)
    sampled = model(source, lengths, target_in)
    model.teacher_forcing = 1.0
    forced = model(source, lengths, target_in)
    assert sampled.shape == forced.shape
    torch.testing.assert_close(sampled[:, 0], forced[:, 0])  # step 1 reads <s> either way
    assert not torch.allclose(sampled[:, 2:], forced[:, 2:])


def test_tied_embeddings_share_one_matrix():
    model = tiny_model("bahdanau", tie_embeddings=True)
    assert model.output.weight is model.target_embedding.weight and model.readout.out_features == 8


# -- search --------------------------------------------------------------------------------------
@pytest.mark.parametrize("attention,extra", VARIANTS)
@pytest.mark.parametrize("seed", [0, 1])
def test_beam_of_one_is_greedy_exactly(attention, extra, seed):
    model = tiny_model(attention, seed=seed, **extra)
    source, lengths, _ = batch_of(SOURCES, TARGETS)
    max_lengths = torch.tensor([5, 9, 3])
    greedy = greedy_search(model, source, lengths, max_lengths)
    assert greedy == beam_search(model, source, lengths, max_lengths, beam_size=1, alpha=1.0)
    assert all(len(ids) < m for ids, m in zip(greedy, max_lengths.tolist()))  # </s> counts towards the limit


def sequence_score(
    model: Seq2Seq, source: torch.Tensor, lengths: torch.Tensor, ids: list[int], max_length: int
) -> float:
    """log p(ids </s>) under the constraints search applies (<pad>, <s> never; only </s> at the last step)."""
    memory = model.encode(source, lengths)
    state = model.initial_state(memory)
    total, previous = 0.0, BOS_ID
    for step, token in enumerate([*ids, EOS_ID]):
        log_probs, state, _ = model.step(memory, state, torch.tensor([previous]))
        if step == max_length - 1 and token != EOS_ID:
            return float("-inf")
        total += float(log_probs[0, token])
        previous = token
    return total


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 3])
def test_a_beam_as_large_as_the_hypothesis_space_finds_the_exact_best(alpha, seed):
    """5 target ids: <pad> <unk> <s> </s> and one word; <unk> and the word may be generated. With at most
    4 steps there are 1 + 2 + 4 + 8 = 15 hypotheses; a beam of 16 prunes none of them."""
    model = tiny_model("bahdanau", target_vocab=5, seed=seed)
    source, lengths, _ = batch_of([[5, 6, 7], [8, 9]], [[4], [4]])
    max_length = 4
    best = beam_search(model, source, lengths, torch.tensor([max_length] * 2), beam_size=16, alpha=alpha)
    for row in range(2):
        hypotheses = [list(ids) for n in range(max_length) for ids in itertools.product([1, 4], repeat=n)]
        scored = [
            (
                sequence_score(
                    model, source[row : row + 1, : int(lengths[row])], lengths[row : row + 1], ids, max_length
                )
                / length_penalty(len(ids) + 1, alpha),
                ids,
            )
            for ids in hypotheses
        ]
        assert best[row] == max(scored)[1]


def test_batched_beam_search_equals_one_sentence_at_a_time():
    model = tiny_model("luong")
    source, lengths, _ = batch_of(SOURCES, TARGETS)
    max_lengths = torch.tensor([6, 10, 4])
    together = beam_search(model, source, lengths, max_lengths, beam_size=4, alpha=0.6)
    alone = [
        beam_search(model, source[i : i + 1, : int(lengths[i])], lengths[i : i + 1], max_lengths[i : i + 1], 4, 0.6)[0]
        for i in range(3)
    ]
    assert together == alone


def test_a_beam_below_one_is_refused():
    model = tiny_model()
    source, lengths, _ = batch_of(SOURCES, TARGETS)
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        beam_search(model, source, lengths, torch.tensor([3, 3, 3]), beam_size=0)


# -- metrics and the task's steps ----------------------------------------------------------------
HYPOTHESES = ["A man rides a bicycle down the street.", "two dogs play in the snow .", "A woman."]
REFERENCES = ["A man is riding a bike down the street.", "Two dogs are playing in the snow.", "A woman sings."]


def test_bleu_chrf_and_lowercased_bleu_are_sacrebleus():
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score)
    assert scores["bleu_lowercase"] == pytest.approx(
        sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES], lowercase=True).score
    )
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score)
    assert scores["bleu_lowercase"] > scores["bleu"]  # "two" matches "Two" only without case
    assert corpus_scores(REFERENCES, REFERENCES)["bleu"] == pytest.approx(100.0)
    assert signatures()["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")


def test_the_loss_is_label_smoothed_cross_entropy_over_real_target_tokens(mt_root, tmp_path):
    task = translation_task(mt_root, tmp_path, "model.label_smoothing=0.2")
    data = task.prepare()
    model = task.build_model(data.artifacts).eval()
    batch = next(iter(data.val))
    out = task.step(model, batch)
    logits = model(batch.source, batch.source_lengths, batch.target_in)
    expected = F.cross_entropy(logits.transpose(1, 2), batch.target_out, ignore_index=PAD_ID, label_smoothing=0.2)
    torch.testing.assert_close(out.loss, expected)
    assert out.num_tokens == int((batch.target_out != PAD_ID).sum())
    assert (batch.target_out[:, 0] != PAD_ID).all() and (batch.target_in[:, 0] == BOS_ID).all()


def test_evaluate_scores_detokenized_hypotheses_against_the_references(mt_root, tmp_path):
    task = translation_task(mt_root, tmp_path)
    data = task.prepare()
    tokenizer = train_subword_tokenizer(HYPOTHESES, model="bpe", vocab_size=60)
    artifacts = {**data.artifacts, "target_tokenizer": tokenizer.to_str()}
    ids = encode_texts(tokenizer, HYPOTHESES)
    outputs = [
        StepOutput(
            torch.tensor(1.0),
            10,
            2,
            {"loss_sum": 12.0, "nll_sum": 10.0, "tokens": 10, "hypotheses": ids[:2], "references": REFERENCES[:2]},
        ),
        StepOutput(
            torch.tensor(1.0),
            5,
            1,
            {"loss_sum": 6.0, "nll_sum": 5.0, "tokens": 5, "hypotheses": ids[2:], "references": REFERENCES[2:]},
        ),
    ]
    metrics = task.evaluate(outputs, artifacts)
    assert metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score)
    assert metrics["loss"] == pytest.approx(18 / 15) and metrics["perplexity"] == pytest.approx(math.exp(1.0))


def test_data_is_prepared_with_references_extra_tests_and_cut_sentences(mt_root, tmp_path):
    task = translation_task(mt_root, tmp_path, "data.max_length=6")
    data = task.prepare()
    assert set(data.extra_tests) == set(multi30k.EXTRA_TESTS)
    assert "train 160" in data.summary["pairs"] and "test 16" in data.summary["pairs"]
    assert (
        data.summary["cut to max_length 6"].startswith("train ")
        and "train 0," not in data.summary["cut to max_length 6"]
    )
    batch = next(iter(data.test))
    assert isinstance(batch, TranslationBatch) and len(batch.references) == len(batch.source_lengths)
    assert int(batch.source_lengths.max()) <= 6 and all(r.endswith(".") for r in batch.references)
    assert len(data.artifacts["showcase"]) == 3


def test_the_artifacts_round_trip_through_their_record_unchanged(mt_root, tmp_path):
    data = translation_task(mt_root, tmp_path).prepare()
    back = TranslationArtifacts.from_dict(data.artifacts).as_dict()
    assert back == data.artifacts and layout(back) == layout(data.artifacts)


def test_a_run_saved_before_the_record_loads_and_translates_as_before(mt_root, tmp_path):
    task = translation_task(mt_root, tmp_path)
    data = task.prepare()
    # the artifacts as every translation checkpoint has held them: a BPE tokenizer per side trained on the
    # training pairs, the languages, data.max_length and the first three short validation pairs
    folder = mt_root / "multi30k"
    train = read_parallel(folder / "train.de.gz", folder / "train.en.gz")
    val = read_parallel(folder / "val.de.gz", folder / "val.en.gz")
    source = train_subword_tokenizer(train.sources, model="bpe", vocab_size=40)
    target = train_subword_tokenizer(train.targets, model="bpe", vocab_size=40)
    short = [i for i, line in enumerate(val.sources) if len(line.split()) <= 14]
    older = {
        "source_tokenizer": source.to_str(),
        "target_tokenizer": target.to_str(),
        "source_vocab_size": source.get_vocab_size(),
        "target_vocab_size": target.get_vocab_size(),
        "source": "de",
        "target": "en",
        "max_length": 100,
        "showcase": [[val.sources[i], val.targets[i]] for i in short[:3]],
    }
    assert data.artifacts == older and layout(data.artifacts) == layout(older)  # so such a run resumes, too
    model = task.build_model(data.artifacts).eval()
    run = load_run(save_run(tmp_path / "best.pt", task, model, older))
    assert run.artifacts == older
    for text in val.sources[:3]:
        assert run.predict(text, beam_size=2) == task.predict(model, data.artifacts, text, beam_size=2)


@pytest.mark.parametrize("attention", ["luong", "none"])
def test_each_validation_shows_the_same_sentences_and_their_attention(mt_root, tmp_path, attention):
    from matplotlib.figure import Figure

    task = translation_task(mt_root, tmp_path, f"model.attention={attention}")
    data = task.prepare()
    model = task.build_model(data.artifacts).train()
    markdown = task.examples(model, data.artifacts)["translations"]
    assert markdown.count("\n") == 1 + len(data.artifacts["showcase"]) and data.artifacts["showcase"][0][0] in markdown
    figures = task.figures(model, data.artifacts)
    assert model.training  # left as it was found
    if attention == "none":
        assert figures == {}
    else:
        assert len(figures) == 3 and all(isinstance(f, Figure) for f in figures.values())


def test_the_final_evaluation_decodes_with_the_configured_beam(mt_root, tmp_path):
    task = translation_task(mt_root, tmp_path, "decode.beam_size=4", "decode.val_beam_size=1")
    data = task.prepare()
    assert task.beam_size == 1  # validation during training: greedy
    report = task.configure_evaluation(task.build_model(data.artifacts), data, torch.device("cpu"))
    assert (task.beam_size, report["beam_size"], report["length_penalty"]) == (4, 4, 0.6)
    assert task.configure_evaluation(None, data, torch.device("cpu"), beam_size=2)["beam_size"] == 2
    with pytest.raises(ConfigError, match="--beam-size=0 is impossible"):
        task.configure_evaluation(None, data, torch.device("cpu"), beam_size=0)


# -- one-line errors before training -------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.attention=transformer"], "model.attention='transformer' is unknown; use one of"),
        (["decode.beam_size=0"], "decode.beam_size=0 is impossible; it must be a positive integer"),
        (["decode.length_penalty=-1"], "decode.length_penalty=-1 is impossible"),
        (["data.source=cs"], "data.source='cs' is not a Multi30k language; use one of ['en', 'de', 'fr']"),
        (["data.target=de"], "data.source and data.target are both 'de'; choose two languages"),
        (
            [
                "model.attention=luong",
                "model.luong_score=dot",
                "model.bidirectional=true",
                "model.decoder_hidden_size=64",
            ],
            "model.luong_score=dot needs the decoder's size (64) to equal the encoder's output size (256)",
        ),
        (["model.teacher_forcing=1.5"], "model.teacher_forcing=1.5 is impossible; it must be a number in [0, 1]"),
        (["+decode.beam=3"], "decode.beam is not a setting of `decode`; did you mean decode.beam_size?"),
    ],
)
def test_a_bad_translation_setting_is_one_line(overrides, message):
    with pytest.raises(ConfigError) as error:
        check_config(compose_config(["task=multi30k", *overrides]))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_translation_corpus_needs_a_folder():
    with pytest.raises(ConfigError, match="task=translation needs a corpus: add data.path=DIR"):
        check_config(compose_config(["task=translation"]))


@pytest.mark.slow
def test_misaligned_user_corpus_stops_before_training_in_one_line(tmp_path, mt_env):
    corpus = tmp_path / "corpus"
    for split in ("train", "val", "test"):
        write_gz(corpus / f"{split}.de.gz", ["Ein Mann.", "Eine Frau."])
        write_gz(corpus / f"{split}.en.gz", ["A man.", "A woman."] + (["A dog."] if split == "val" else []))
    result = train(tmp_path / "run", ["task=translation", f"data.path={corpus}"], mt_env, check=False)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error == (
        f"error: {corpus / 'val.de.gz'} has 2 lines but {corpus / 'val.en.gz'} has 3; the two sides "
        f"of a parallel corpus must be aligned line by line"
    )


# -- end to end ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_predict_and_evaluate_end_to_end(tmp_path, mt_env):
    run_dir = tmp_path / "run"
    train(
        run_dir,
        ["task=multi30k", "model=gru", "data.vocab_size=40", "trainer.max_epochs=2", "decode.beam_size=3"],
        mt_env,
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["monitor"] == "val/bleu"
    assert {"bleu", "chrf", "bleu_lowercase", "loss", "perplexity"} <= set(metrics["test"])
    assert set(multi30k.EXTRA_TESTS) <= set(metrics) and metrics["evaluation"]["beam_size"] == 3
    assert "tok:13a" in metrics["evaluation"]["sacrebleu"]["bleu"]
    log = (run_dir / "train.log").read_text()
    assert "sacreBLEU nrefs:1|case:mixed" in log and "final evaluation: beam 3" in log

    result = run_script(
        [
            str(ROOT / "scripts" / "predict.py"),
            str(run_dir),
            "Ein Mann fährt ein Fahrrad.",
            "--beam-size",
            "2",
            "--attention",
        ],
        mt_env,
    )
    answer = json.loads(result.stdout)
    assert isinstance(answer["translation"], str) and answer["beam_size"] == 2
    attention = answer["attention"]
    assert len(attention["weights"]) == len(attention["translation"])
    assert all(len(row) == len(attention["source"]) and abs(sum(row) - 1) < 0.01 for row in attention["weights"])

    refused = run_script(
        [str(ROOT / "scripts" / "predict.py"), str(run_dir), "Ein Mann.", "--beam-size", "0"], mt_env, check=False
    )
    assert refused.returncode == 2 and "--beam-size=0 is impossible" in refused.stderr

    evaluated = json.loads(
        run_script([str(ROOT / "scripts" / "evaluate.py"), str(run_dir), "--beam-size", "1"], mt_env).stdout
    )
    assert evaluated["beam_size"] == 1 and set(multi30k.EXTRA_TESTS) <= set(evaluated)
