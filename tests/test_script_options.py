"""A task's options of predict.py and evaluate.py come from declarations (`schema.add_options`): the option, its
help and default, and its check are the declared key's, so none of them is written twice."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from seqmodels.errors import ConfigError
from seqmodels.schema import with_options
from seqmodels.tasks.language_model import CacheOptions, LanguageModelTask, SamplingOptions
from seqmodels.tasks.translation import DecodeConfig, TranslationTask


def options_of(add) -> dict[str, argparse.Action]:
    parser = argparse.ArgumentParser()
    add(parser.add_argument_group())
    return {action.option_strings[0]: action for action in parser._actions if action.option_strings[0] != "-h"}


def test_each_declared_key_is_an_option_with_its_meaning_and_default():
    options = options_of(LanguageModelTask.add_evaluate_options)
    assert list(options) == ["--cache-size", "--cache-theta", "--cache-lambda", "--tune-cache"]
    theta = dataclasses.fields(CacheOptions)[1]
    assert options["--cache-theta"].help == f"{theta.metadata['help']} (default: {theta.default})"
    assert options["--cache-theta"].type is float and options["--cache-theta"].default is None
    assert options["--tune-cache"].const is True  # a flag
    assert list(options_of(LanguageModelTask.add_predict_options)) == ["--temperature", "--top-k", "--length", "--seed"]


def test_an_option_that_overrides_a_run_key_names_it_as_its_default():
    options = options_of(TranslationTask.add_predict_options)
    beam = next(f for f in dataclasses.fields(DecodeConfig) if f.name == "beam_size")
    assert list(options) == ["--beam-size", "--attention"]
    assert options["--beam-size"].help == f"{beam.metadata['help']} (default: the run's decode.beam_size)"
    assert list(options_of(TranslationTask.add_evaluate_options)) == ["--beam-size", "--length-penalty"]


def test_given_options_replace_the_declared_values_and_are_checked_as_options():
    decode = DecodeConfig(beam_size=5, length_penalty=0.6)
    assert with_options(decode, {"beam_size": 2, "length_penalty": None, "top_k": 3}) == DecodeConfig(beam_size=2)
    with pytest.raises(ConfigError, match=r"^--beam-size=0 is impossible; it must be a positive integer$"):
        with_options(decode, {"beam_size": 0})
    with pytest.raises(ConfigError, match=r"^--temperature=0 is impossible; it must be a number in \(0, inf\)$"):
        with_options(SamplingOptions(), {"temperature": 0})
    with pytest.raises(ConfigError, match=r"^--tune-cache needs --cache-size N"):  # the section's check()
        with_options(CacheOptions(), {"tune_cache": True})
    assert with_options(SamplingOptions(), {}) == SamplingOptions()
