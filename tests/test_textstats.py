"""Tests for worker/textstats.py: each measure on texts written for the test, answers known."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from shared import names
from worker.textstats import (
    NgramModel,
    SuffixIndex,
    TextJudge,
    TextStats,
    decode,
    generated_words,
    longest_copy,
    mean_metrics,
    repetition,
    vocabulary,
    word_share,
)

# -- words and word share ------------------------------------------------------------------


def test_words_are_case_folded_runs_of_letters_split_by_digits_underscores_and_punctuation():
    words = {"the", "cat", "s", "snake", "case", "x", "café"}
    assert vocabulary("The CAT's snake_case2x, Café!") == words


def test_the_word_the_prompt_ends_in_counts_once_completed_and_a_word_cut_by_the_end_does_not():
    # "c" + "at" is the sample's first word; "no" touches the end and may be cut off.
    assert generated_words("The c", "at sat on a hat no") == ["cat", "sat", "on", "a", "hat"]
    assert generated_words("The cat", " sat.") == ["sat"]  # punctuation ends the last word
    assert generated_words("The cat ", "") == []  # nothing generated, nothing counted


def test_word_share_is_the_share_of_generated_words_that_occur_in_the_training_text():
    known = vocabulary("the cat sat on the mat")
    assert word_share(generated_words("The c", "at sat on a hat no"), known) == 3 / 5
    assert word_share(["THE".casefold(), "Mat".casefold()], known) == 1.0
    assert math.isnan(word_share([], known))


# -- repetition ----------------------------------------------------------------------------


def test_repetition_is_the_share_of_word_trigrams_that_repeat_an_earlier_one():
    assert repetition(["a", "b", "c", "a", "b", "c"]) == pytest.approx(1 / 4)  # abc bca cab abc
    assert repetition(["one", "two", "three", "four", "five"]) == 0.0
    assert repetition(["la"] * 5) == pytest.approx(2 / 3)  # three trigrams, one distinct
    assert math.isnan(repetition(["too", "short"]))


# -- longest copy --------------------------------------------------------------------------


@pytest.mark.parametrize("index", [str, SuffixIndex], ids=["text", "suffix-index"])
def test_longest_copy_finds_the_longest_span_of_the_sample_that_the_source_holds_verbatim(index):
    source = index("the quick brown fox")
    assert longest_copy("a quick brown cat", source) == len(" quick brown ")
    assert longest_copy("the quick brown fox", source) == len("the quick brown fox")
    assert longest_copy("XYZ", source) == 0
    assert longest_copy("", source) == 0
    assert longest_copy("zzq", source) == 1  # one character is a span too


def test_longest_copy_agrees_with_a_brute_force_search_on_random_texts():
    rng = random.Random(0)
    for _ in range(200):
        source = "".join(rng.choices("abc", k=rng.randint(1, 40)))
        sample = "".join(rng.choices("abcd", k=rng.randint(0, 25)))
        spans = [
            j - i
            for i in range(len(sample))
            for j in range(i + 1, len(sample) + 1)
            if sample[i:j] in source
        ]
        assert longest_copy(sample, SuffixIndex(source)) == max(spans, default=0), (sample, source)


def test_the_suffix_index_orders_every_suffix_as_python_sorts_strings():
    rng = random.Random(1)
    texts = ["", "a", "aaaa", "banana", "mississippi", "abcabcabc\n\u00e9", "x" * 33 + "y"]
    texts += ["".join(rng.choices("ab\n", k=rng.randint(2, 80))) for _ in range(50)]
    for text in texts:
        order = SuffixIndex(text).order.tolist()
        assert order == sorted(range(len(text)), key=lambda i: text[i:]), text


def test_the_suffix_index_answers_in_exactly_as_the_text_does():
    rng = random.Random(2)
    text = "".join(rng.choices("abc ", k=500))
    index = SuffixIndex(text)
    for _ in range(500):
        pattern = "".join(rng.choices("abcd ", k=rng.randint(1, 9)))
        assert (pattern in index) == (pattern in text), pattern
    assert text[123:400] in index and text + "a" not in index


# -- the reference n-gram model ------------------------------------------------------------


def test_a_unigram_judge_gives_the_witten_bell_probabilities_worked_out_by_hand():
    # "ab": counts a 1, b 1 (total 2, 2 types) over a uniform 1/3 (a, b, unseen).
    # P(a) = (1 + 2/3) / (2 + 2) = 5/12; P(unseen z) = (0 + 2/3) / 4 = 1/6.
    bits = NgramModel("ab", order=1).bits("", "az")
    assert bits == pytest.approx([math.log2(12 / 5), math.log2(6)])


def test_a_bigram_judge_interpolates_the_context_with_the_order_below_and_scores_no_prompt():
    # "abab": unigram P(b) = (2 + 2/3) / (4 + 2) = 4/9; after "a": 2 b's, 1 type, so
    # P(b | a) = (2 + 1 * 4/9) / (2 + 1) = 22/27. The prompt "a" is context, not scored.
    model = NgramModel("abab", order=2)
    assert model.bits("a", "b") == pytest.approx([math.log2(27 / 22)])
    assert model.bits("", "ab") == pytest.approx([math.log2(9 / 4), math.log2(27 / 22)])
    assert len(model.bits("abab", "")) == 0 and math.isnan(model.bpc("abab", ""))


@pytest.mark.parametrize(
    "context", ["", "q", "the", "the qu", "xyzzy", "ck bro", "lazy dog", "dog", "zzzz the"]
)
def test_the_judge_predicts_a_distribution_over_the_alphabet_and_one_unseen_slot(context):
    text = "the quick brown fox jumps over the lazy dog, the quick dog"
    model = NgramModel(text, order=5)
    outcomes = [*sorted(set(text)), "\u00a7"]  # § stands for every character it never saw
    total = sum(2.0 ** -float(model.bits(context, c)[0]) for c in outcomes)
    assert total == pytest.approx(1.0)


def test_the_judge_finds_text_like_its_training_text_cheap_and_scrambled_text_dear():
    rng = random.Random(0)
    train = " ".join(
        rng.choice(["red fish", "blue fish", "one fish", "two fish"]) for _ in range(500)
    )
    model = NgramModel(train)
    alike = model.bpc("one fish ", "two fish red fish blue fish one fish")
    scrambled = model.bpc("one fish ", "hsif owt hsif der hsif eulb hsif eno")
    assert alike < 1.0 < 3.0 < scrambled


# -- the judge, its metrics and the held-out reference -------------------------------------


def test_a_sample_copied_from_the_training_text_scores_as_a_copy():
    train = "It was the best of times, it was the worst of times, it was the age of wisdom."
    stats = TextJudge(train).measure("It was the ", "best of times, it was the worst of times, x")
    assert stats.word_share == 1.0  # "x" touches the end: left out
    assert stats.copy_span == len("best of times, it was the worst of times, ")
    assert stats.repetition == 0.0  # 9 words, 7 trigrams, none twice
    assert stats.ref_bpc < 1.0


def test_mean_metrics_averages_each_measure_over_prompts_under_its_metric_name_skipping_nan():
    stats = [TextStats(1.0, 2.0, 10, math.nan), TextStats(0.5, 4.0, 20, math.nan)]
    assert mean_metrics(stats) == {
        names.METRIC_SAMPLE_WORD_SHARE: 0.75,
        names.METRIC_SAMPLE_REF_BPC: 3.0,
        names.METRIC_SAMPLE_COPY_SPAN: 15.0,
    }
    assert set(mean_metrics(stats, heldout=True)) == {
        names.METRIC_HELDOUT_WORD_SHARE,
        names.METRIC_HELDOUT_REF_BPC,
        names.METRIC_HELDOUT_COPY_SPAN,
    }


def test_the_held_out_reference_measures_windows_of_held_out_text_as_long_as_a_sample():
    train = "the cat sat on the mat. " * 20
    judge = TextJudge(train)
    held_out = "the cat sat on the hat. " * 10  # 240 characters
    got = judge.heldout(held_out, prompt_chars=4, length=44, windows=3)
    # Windows at 0, 96 and 192: each "the " then "cat sat on the hat. the cat sat on the hat. ".
    bpc = judge.ngram.bpc("the ", held_out[4:48])  # the three windows are the same text
    assert got == {
        names.METRIC_HELDOUT_WORD_SHARE: 9 / 11,  # "hat" is no training word
        names.METRIC_HELDOUT_COPY_SPAN: len("at. the cat sat on the "),
        names.METRIC_HELDOUT_REPETITION: 3 / 9,  # 9 trigrams, 6 distinct
        names.METRIC_HELDOUT_REF_BPC: pytest.approx(bpc),
    }


def test_decode_maps_ids_back_to_their_characters_in_one_pass():
    assert decode(np.array([2, 0, 1, 1], dtype=np.uint8), "abé") == "éabb"
