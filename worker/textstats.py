"""Text quality as numbers: what a reader checks in a sample, measured against the training text.

Four measures of the generated part of a sample (never the prompt), each a number a reader can
check by hand:

- **word share**: of the generated words, the share that occur in the training text. A word is
  a maximal run of letters (any script; digits, `_` and punctuation split words), case-folded.
  The word the prompt ends in counts once the sample completes it; the last word is left out
  when it touches the end of the sample, since generation may have cut it off.
- **reference bits per character**: how surprising the generated characters are to a judge
  that is neither of the compared models, a character n-gram model fitted on the training split
  (`NgramModel`: order 5, Witten-Bell interpolation down to a uniform guess over the training
  alphabet plus one slot for characters it never saw). The prompt is context, never scored.
- **longest copy**: the longest run of generated characters found verbatim in the training text,
  so memorising is not mistaken for quality.
- **repetition**: of the generated words' 3-grams, the share that repeat one earlier in the same
  sample (0 for text that never repeats itself, near 1 for a loop).

`TextJudge` indexes a training text once (its words, the n-gram model, a suffix array for
verbatim search); a run gets one from `judge_for` and measures every sample with it. Pure
Python and NumPy, no torch: tested on texts written for the test, whose answers are known.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass, fields

import numpy as np

from shared import names

NGRAM_ORDER = 5  # characters per n-gram: 4 of context, then the one scored
REPEAT_N = 3  # words per n-gram of the repetition measure
# A maximal run of letters: \w without digits and underscore, so any script's letters.
WORD = re.compile(r"[^\W\d_]+")


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def decode(ids: np.ndarray, chars: str) -> str:
    """Text from character ids (`chars[i]` is id i), vectorised: a corpus decodes in one pass."""
    table = code_points(chars)
    return table[np.asarray(ids)].tobytes().decode("utf-32-le")


def generated_words(prompt: str, generated: str) -> list[str]:
    """The case-folded words of `generated` as a sample's measures count them: the word that
    straddles the prompt's end is in (the sample completed it), a word that touches the end of
    the sample is out (generation may have cut it off)."""
    text = prompt + generated
    return [m.group().casefold() for m in WORD.finditer(text) if len(prompt) < m.end() < len(text)]


def word_share(words: list[str], vocabulary: set[str] | frozenset[str]) -> float:
    """The share of `words` that are in `vocabulary`; NaN with no words."""
    if not words:
        return math.nan
    return sum(w in vocabulary for w in words) / len(words)


def vocabulary(text: str) -> frozenset[str]:
    """The case-folded words of a text."""
    return frozenset(w.casefold() for w in WORD.findall(text))


def repetition(words: list[str], n: int = REPEAT_N) -> float:
    """The share of the word n-grams that repeat an earlier one; NaN with fewer than n words."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return math.nan
    return 1.0 - len(set(grams)) / len(grams)


def longest_copy(generated: str, source: Container[str]) -> int:
    """The length of the longest substring of `generated` that occurs verbatim in `source`
    (a `SuffixIndex` of the training text, or any text: `in` means the same for both).

    For each start only the span one longer than the best so far is tried (every substring of
    a span found is found too), so there are at most len(generated) + best membership tests.
    """
    best = 0
    for start in range(len(generated)):
        if len(generated) - start <= best:
            break
        while start + best < len(generated) and generated[start : start + best + 1] in source:
            best += 1
    return best


class SuffixIndex:
    """A text's suffix array: `pattern in index` in O(len(pattern) log n), however long the text.

    Written by hand because no installed library builds one (pydivsufsort would be a compiled
    dependency for fifteen lines). Built by prefix doubling: each round sorts the suffixes by
    their first 2k characters as (rank of the first k, rank of the next k) pairs, one NumPy
    argsort per round, until every rank differs: 11 rounds and 0.7 s for the built-in 0.9 MB
    training text. A `str.__contains__` over the whole text per test is what it replaces: 40
    times slower on a 1000-character sample (170 ms against 4 ms).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.order = self._sort_suffixes(code_points(text))

    @staticmethod
    def _sort_suffixes(points: np.ndarray) -> np.ndarray:
        n = len(points)
        order = np.arange(n)
        rank = np.unique(points, return_inverse=True)[1].astype(np.int64)
        span = 1
        while n and span < n:
            following = np.zeros(n, dtype=np.int64)  # 0: the suffix ends first, so sorts first
            following[: n - span] = rank[span:] + 1
            key = rank * (n + 1) + following
            order = np.argsort(key)
            ranked = key[order]
            rank = np.empty(n, dtype=np.int64)
            rank[order] = np.concatenate(([0], np.cumsum(ranked[1:] != ranked[:-1])))
            if rank[order[-1]] == n - 1:  # every suffix told apart
                break
            span *= 2
        return order

    def __contains__(self, pattern: object) -> bool:
        if not isinstance(pattern, str):
            return False
        text, size = self.text, len(pattern)
        at = bisect.bisect_left(self.order, pattern, key=lambda i: text[i : i + size])
        return at < len(self.order) and text.startswith(pattern, int(self.order[at]))


class NgramModel:
    """An interpolated Witten-Bell character n-gram model: the reference judge of samples.

    P_k(c | h) = (C(h c) + T(h) P_{k-1}(c | h')) / (C(h) + T(h)), where h' is h less its first
    character, C counts in the training text, T(h) is the number of distinct characters seen
    after h, and the recursion ends at the uniform guess 1 / (alphabet + 1). A context never
    seen leaves the lower order's estimate as it is, so every character has a finite cost.

    Order 5 because on the built-in corpus's validation text orders 3 to 7 score 2.50, 1.93,
    1.75, 1.72 and 1.75 bits/char: 5 is within 0.03 of the best and the cheaper to count.
    Counted here with NumPy, one `np.unique` per order (0.25 s on 0.9 MB), because nltk.lm,
    which has Witten-Bell, is not a dependency and counts one n-gram at a time in Python.

    Contexts are numbered level by level (a context of k+1 characters is a k-context's id and
    the next character, the n-gram numbered at level k), so scoring a sample is one
    `np.searchsorted` per order too: no Python loop over characters, fitting or scoring.
    """

    def __init__(self, text: str, order: int = NGRAM_ORDER) -> None:
        points = code_points(text)
        self.order = order
        self.alphabet = np.unique(points)
        self.base = len(self.alphabet) + 1  # id len(alphabet): a character the text never had
        ids = np.searchsorted(self.alphabet, points).astype(np.int64)
        # Per level k (contexts of k characters): the sorted (context, next char) keys, their
        # counts, and per context its total count and number of distinct next characters.
        self.grams: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.totals: list[np.ndarray] = []
        self.types: list[np.ndarray] = []
        context = np.zeros(len(ids), dtype=np.int64)  # level 0: the empty context everywhere
        contexts = 1
        for k in range(order):
            keys = context[k:] * self.base + ids[k:]
            grams, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
            owner = grams // self.base
            self.grams.append(grams)
            self.counts.append(counts)
            self.totals.append(np.bincount(owner, weights=counts, minlength=contexts))
            self.types.append(np.bincount(owner, minlength=contexts).astype(np.float64))
            # The (k+1)-context before position i+1 is the k-gram ending at i.
            context = np.empty(len(ids), dtype=np.int64)
            context[: k + 1] = -1
            context[k + 1 :] = inverse[: max(len(ids) - k - 1, 0)]
            contexts = len(grams)

    def _ids(self, text: str) -> np.ndarray:
        points = code_points(text)
        known = self._find(self.alphabet, points, np.ones(len(points), dtype=bool))
        return np.where(known >= 0, known, len(self.alphabet)).astype(np.int64)

    def bits(self, prompt: str, generated: str) -> np.ndarray:
        """The cost in bits of each character of `generated`, the prompt being its context."""
        ids = self._ids(prompt + generated)
        prob = np.full(len(ids), 1.0 / self.base)
        context = np.zeros(len(ids), dtype=np.int64)  # the k-context before each position
        for k in range(self.order):
            seen = context >= 0
            h = np.maximum(context, 0)
            gram = self._find(self.grams[k], h * self.base + ids, seen)
            count = np.where(gram >= 0, self.counts[k][np.maximum(gram, 0)], 0)
            total = np.where(seen, self.totals[k][h], 0.0)
            types = np.where(seen, self.types[k][h], 0.0)
            seen &= total > 0  # a context seen only at the very end of the text predicts nothing
            mixed = (count + types * prob) / np.where(seen, total + types, 1.0)
            prob = np.where(seen, mixed, prob)
            # The (k+1)-context before position i+1 is the k-gram ending at i.
            context = np.concatenate(([-1], gram[:-1]))
        return -np.log2(prob[len(prompt) :])

    @staticmethod
    def _find(sorted_keys: np.ndarray, keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Index of each key in `sorted_keys`, or -1 where it is absent or not `valid`."""
        if not len(sorted_keys):
            return np.full(len(keys), -1, dtype=np.int64)
        at = np.searchsorted(sorted_keys, keys)
        clipped = np.minimum(at, len(sorted_keys) - 1)
        hit = valid & (at < len(sorted_keys)) & (sorted_keys[clipped] == keys)
        return np.where(hit, clipped, -1)

    def bpc(self, prompt: str, generated: str) -> float:
        """Mean bits per character of `generated`; NaN when it is empty."""
        costs = self.bits(prompt, generated)
        return float(costs.mean()) if len(costs) else math.nan


@dataclass(frozen=True)
class TextStats:
    """One sample's measures (see the module docstring); NaN where a text has too few words."""

    word_share: float
    ref_bpc: float
    copy_span: int
    repetition: float


# Each measure's MLflow metrics: a sample step's mean over prompts, and held-out text's.
METRICS = {
    "word_share": (names.METRIC_SAMPLE_WORD_SHARE, names.METRIC_HELDOUT_WORD_SHARE),
    "ref_bpc": (names.METRIC_SAMPLE_REF_BPC, names.METRIC_HELDOUT_REF_BPC),
    "copy_span": (names.METRIC_SAMPLE_COPY_SPAN, names.METRIC_HELDOUT_COPY_SPAN),
    "repetition": (names.METRIC_SAMPLE_REPETITION, names.METRIC_HELDOUT_REPETITION),
}
HELDOUT_WINDOWS = 8


class TextJudge:
    """A training text indexed once for measuring many samples against it."""

    def __init__(self, train_text: str, order: int = NGRAM_ORDER) -> None:
        self.vocabulary = vocabulary(train_text)
        self.ngram = NgramModel(train_text, order)
        self.index = SuffixIndex(train_text)

    def measure(self, prompt: str, generated: str) -> TextStats:
        words = generated_words(prompt, generated)
        return TextStats(
            word_share=word_share(words, self.vocabulary),
            ref_bpc=self.ngram.bpc(prompt, generated),
            copy_span=longest_copy(generated, self.index),
            repetition=repetition(words),
        )

    def heldout(
        self, text: str, prompt_chars: int, length: int, windows: int = HELDOUT_WINDOWS
    ) -> dict[str, float]:
        """The measures of text no model wrote, to read a sample's against: `windows` evenly
        spaced stretches of held-out `text`, each `prompt_chars` of context then `length`
        characters measured as a sample's generated part is, averaged (held-out metrics)."""
        span = prompt_chars + length
        starts = sorted({int(s) for s in np.linspace(0, max(len(text) - span, 0), windows)})
        stats = [
            self.measure(text[s : s + prompt_chars], text[s + prompt_chars : s + span])
            for s in starts
        ]
        return mean_metrics(stats, heldout=True)


@functools.lru_cache(maxsize=1)
def judge_for(train_text: str) -> TextJudge:
    """The judge of a training text, fitted once per process and text (0.25 s for the n-gram
    model and 0.7 s for the suffix array on the built-in corpus): the cells of a comparison and
    the trials of a sweep that train in one process on one corpus share it."""
    return TextJudge(train_text)


def mean_metrics(stats: Iterable[TextStats], heldout: bool = False) -> dict[str, float]:
    """Each measure's mean over samples (a step's prompts), keyed by its MLflow metric (the
    held-out one when `heldout`); a measure with no finite value is left out, since MLflow
    would store a NaN that reads as data."""
    rows = list(stats)
    out: dict[str, float] = {}
    for f in fields(TextStats):
        finite = [v for s in rows if math.isfinite(v := float(getattr(s, f.name)))]
        if finite:
            out[METRICS[f.name][heldout]] = sum(finite) / len(finite)
    return out
