"""Reading IMDB in its three forms, downloads, tokenization, caching, splits and bucketing."""

from __future__ import annotations

import hashlib
import shutil
import tarfile

import pytest
import torch

from conftest import tar_directory, write_aclimdb
from seqmodels.config import compose_config
from seqmodels.data import imdb
from seqmodels.data.batching import BucketBatchSampler, pad_right, padding_fraction
from seqmodels.data.download import download
from seqmodels.data.encoding import TextEncoding
from seqmodels.data.splits import seeded_split
from seqmodels.data.text import PAD_ID, UNK_ID, encode, train_word_tokenizer
from seqmodels.errors import ConfigError, DataError
from seqmodels.tasks import get_task


def sentiment_cfg(root, cache, *overrides):
    return compose_config(
        [f"data.root={root}", f"data.cache_dir={cache}", "data.download=false", "data.batch_size=4", *overrides]
    )


# -- reading -----------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["aclImdb", "aclImdb_v1.tar.gz", "aclImdb.tar.gz"])
def test_imdb_is_read_from_a_tree_or_either_archive_in_place(tmp_path, form):
    tree = write_aclimdb(tmp_path / "staging", per_folder=5)
    folder = tmp_path / "root" / "imdb"
    folder.mkdir(parents=True)
    if form == "aclImdb":
        shutil.copytree(tree, folder / "aclImdb")
    else:
        tar_directory(tree, folder / form)
    source = imdb.locate(tmp_path / "root", allow_download=False)
    assert source == folder / form
    splits = imdb.read(source)
    assert [len(splits[s].texts) for s in ("train", "test")] == [10, 10]
    assert splits["train"].labels == [0] * 5 + [1] * 5  # neg first, by review id
    assert (
        splits["train"].texts[0]
        == (tree / "train" / "neg" / "0_")
        .parent.joinpath(next(p.name for p in (tree / "train" / "neg").iterdir() if p.name.startswith("0_")))
        .read_text()
    )
    assert sorted(p.name for p in folder.iterdir()) == [form]  # nothing unpacked or cached into data.root


def test_missing_imdb_says_where_to_put_it(tmp_path):
    with pytest.raises(
        DataError, match=r"IMDB not found in .*imdb: put aclImdb_v1\.tar\.gz \(from https://ai\.stanford"
    ):
        imdb.locate(tmp_path, allow_download=False)


def test_corrupt_archive_is_reported_not_crashed_on(tmp_path):
    (tmp_path / "imdb").mkdir()
    (tmp_path / "imdb" / "aclImdb_v1.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 definitely not gzip")
    with pytest.raises(DataError, match="corrupt or unreadable"):
        imdb.read(imdb.locate(tmp_path, allow_download=False))


def test_download_checks_the_checksum_and_leaves_no_partial_file(tmp_path):
    payload = tmp_path / "served.tar.gz"
    payload.write_bytes(b"archive bytes" * 1000)
    md5 = hashlib.md5(payload.read_bytes()).hexdigest()
    target = tmp_path / "imdb" / "aclImdb_v1.tar.gz"
    assert download(payload.as_uri(), target, md5=md5) == target
    assert target.read_bytes() == payload.read_bytes()
    target.unlink()
    with pytest.raises(DataError, match="expected 0+: the file is corrupt"):
        download(payload.as_uri(), target, md5="0" * 32, manual_hint="put it there")
    assert list((tmp_path / "imdb").iterdir()) == []


def test_unreachable_url_gives_a_clear_offline_error(tmp_path):
    with pytest.raises(DataError, match=r"could not download .*; put the file in /x"):
        download((tmp_path / "nowhere.tar.gz").as_uri(), tmp_path / "out.tar.gz", manual_hint="put the file in /x")


# -- tokenization ------------------------------------------------------------------------------
def test_tokenizer_removes_html_breaks_lowercases_and_maps_rare_words_to_unk():
    tokenizer = train_word_tokenizer(
        ["The film<br />was GREAT, great!", "the plot was great"], vocab_size=100, min_freq=2, lowercase=True
    )
    vocab = tokenizer.get_vocab()
    assert vocab["<pad>"] == PAD_ID and vocab["<unk>"] == UNK_ID
    assert {"the", "was", "great"} <= set(vocab) and "film" not in vocab and "br" not in vocab
    assert tokenizer.encode("THE film<br/>was great").tokens == ["the", "<unk>", "was", "great"]
    assert encode(tokenizer, [""]) == [[UNK_ID]]  # an empty text still has one token


def test_vocabulary_size_is_respected_and_case_can_be_kept():
    texts = [f"w{i} " * (50 - i) for i in range(40)] + ["Word word"]
    tokenizer = train_word_tokenizer(texts, vocab_size=12, min_freq=1, lowercase=False)
    assert tokenizer.get_vocab_size() == 12
    assert tokenizer.encode("w0 w39").tokens == ["w0", "<unk>"]


# -- splits and batching -----------------------------------------------------------------------
def test_seeded_split_is_a_reproducible_partition():
    train, val = seeded_split(100, 0.1, seed=7)
    assert len(val) == 10 and sorted(torch.cat([train, val]).tolist()) == list(range(100))
    assert torch.equal(seeded_split(100, 0.1, seed=7)[1], val)
    assert not torch.equal(seeded_split(100, 0.1, seed=8)[1], val)
    with pytest.raises(ConfigError, match="val_fraction"):
        seeded_split(100, 1.0, seed=0)


def test_bucketing_covers_every_example_once_with_little_padding():
    lengths = torch.randint(1, 500, (1000,), generator=torch.Generator().manual_seed(0))
    sampler = BucketBatchSampler(lengths, batch_size=16, shuffle=True, seed=3, pool_batches=10)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    random_batches = torch.randperm(1000).split(16)
    assert padding_fraction(lengths, batches) < 0.15 < 0.3 < padding_fraction(lengths, random_batches)
    sampler.set_epoch(1)
    assert list(sampler) != batches  # shuffled between epochs ...
    sampler.set_epoch(0)
    assert list(sampler) == batches  # ... reproducibly


def test_evaluation_batches_are_sorted_and_complete():
    lengths = torch.tensor([5, 1, 9, 3, 7])
    batches = list(BucketBatchSampler(lengths, batch_size=2, shuffle=False))
    assert batches == [[1, 3], [0, 4], [2]]


def test_pad_right():
    tokens, lengths = pad_right([torch.tensor([4, 5, 6]), torch.tensor([7])])
    assert tokens.tolist() == [[4, 5, 6], [7, PAD_ID, PAD_ID]] and lengths.tolist() == [3, 1]
    stored = [torch.tensor([1], dtype=torch.int32), torch.tensor([2, 3], dtype=torch.int32)]  # a cache's ids
    tokens, _ = pad_right(stored, pad_value=-1)
    assert tokens.dtype == torch.int64 and tokens.tolist() == [[1, -1], [2, 3]]


# -- the task's prepared data and its cache ----------------------------------------------------
def test_prepare_builds_a_cache_once_and_rebuilds_when_a_setting_changes(data_root, tmp_path):
    cache = tmp_path / "cache"
    data = get_task(sentiment_cfg(data_root, cache)).prepare()
    assert data.summary["train examples"] + data.summary["val examples"] == 48
    assert data.summary["test examples"] == 48
    assert len(list(cache.iterdir())) == 1
    entry = next(cache.iterdir())
    mtime = entry.stat().st_mtime_ns
    again = get_task(sentiment_cfg(data_root, cache)).prepare()
    assert entry.stat().st_mtime_ns == mtime and again.artifacts == data.artifacts
    batch = next(iter(again.train))
    assert batch.tokens.shape[0] == 4 and batch.lengths.max() == batch.tokens.shape[1]
    get_task(sentiment_cfg(data_root, cache, "data.max_length=5")).prepare()
    assert len(list(cache.iterdir())) == 2
    short = get_task(sentiment_cfg(data_root, cache, "data.max_length=5")).prepare()
    assert max(int(b.lengths.max()) for b in short.train) == 5


def test_vocabulary_comes_from_the_training_part_only(data_root, tmp_path):
    cfg = sentiment_cfg(data_root, tmp_path / "cache", "data.min_freq=1")
    data = get_task(cfg).prepare()
    from seqmodels.data.text import tokenizer_from_json

    vocab = tokenizer_from_json(data.artifacts["tokenizer"]).get_vocab()
    splits = imdb.read(imdb.locate(data_root, allow_download=False))
    train_index, _ = seeded_split(48, 0.1, cfg.data.split_seed)
    train_words = {
        w.lower().strip(".") for i in train_index for w in splits["train"].texts[i].replace("<br", " ").split()
    }
    assert set(vocab) - {"<pad>", "<unk>", ".", "/><", "/>"} <= train_words | {"br"}


def test_an_undecodable_review_is_refused_by_the_one_rule_or_replaced_on_request(tmp_path, caplog):
    tree = write_aclimdb(tmp_path / "imdb", per_folder=3)
    (tree / "train" / "pos" / "0_9.txt").write_bytes(b"great \xff\xfe film")
    (tree / "test" / "neg" / "1_2.txt").write_bytes(b"")
    with pytest.raises(
        DataError, match=r"train/pos/0_9.txt:1: byte 7 \(0xff\) is not utf-8; .*data.encoding_errors=replace"
    ):
        imdb.read(tree)
    with caplog.at_level("WARNING", logger="seqmodels"):
        splits = imdb.read(tree, TextEncoding(errors="replace"))
    assert "great \ufffd\ufffd film" in splits["train"].texts and "" in splits["test"].texts
    assert "0_9.txt: 2 byte(s) are not utf-8 and were replaced by U+FFFD" in caplog.text
    assert "1 IMDB reviews are empty" in caplog.text


def test_a_review_in_an_archive_is_named_by_the_archive_and_its_member(tmp_path):
    tree = write_aclimdb(tmp_path / "imdb", per_folder=2)
    (tree / "test" / "neg" / "0_2.txt").write_bytes("caf\u00e9".encode("latin-1"))
    archive = tmp_path / "aclImdb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="aclImdb")
    with pytest.raises(DataError, match=rf"{archive}:aclImdb/test/neg/0_2.txt:1: byte 4"):
        imdb.read(archive)
    assert "caf\u00e9" in imdb.read(archive, TextEncoding("latin-1"))["test"].texts


def test_an_empty_split_is_refused(tmp_path):
    tree = write_aclimdb(tmp_path / "imdb", per_folder=2)
    shutil.rmtree(tree / "test")
    with pytest.raises(DataError, match="has no test/pos and test/neg reviews"):
        imdb.read(tree)


def test_download_script_reports_ready_datasets_and_what_is_missing(data_root, tmp_path, env):
    from conftest import ROOT, run_script

    ready = run_script([str(ROOT / "scripts" / "download_data.py"), "imdb", "conll2003", "--root", str(data_root)], env)
    assert ready.stdout.splitlines()[0].startswith("imdb: ready (") and "conll2003: ready" in ready.stdout
    missing = run_script(
        [str(ROOT / "scripts" / "download_data.py"), "conll2003", "--root", str(tmp_path)], env, check=False
    )
    assert missing.returncode == 1 and "conll2003: CoNLL-2003 not found" in missing.stderr
