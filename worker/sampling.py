"""Samples during training: each prompt's text at a sample step, logged as files and as one
table across steps, with its text-quality figures (`worker.textstats`) as metrics.

The judge that scores the samples is fitted once per run on the training split; at step 0 it
also scores held-out text of a sample's length, the level a model's samples read against.
Samples of the best checkpoint's weights are named apart and leave the metrics alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from shared import names
from shared.spec import SampleSpec
from worker import textstats
from worker.data import Corpus
from worker.model import CharRNN
from worker.tracking import RunLogger

DEFAULT_PROMPT_CHARS = 32


class Sampler:
    """Generates and logs one run's samples from its fixed prompts and seed."""

    def __init__(
        self,
        spec: SampleSpec,
        corpus: Corpus,
        train_ids: np.ndarray,
        device: torch.device,
    ) -> None:
        self.spec = spec
        self.vocab = corpus.vocab
        self.device = device
        self.val_ids = corpus.split("val")
        self.prompts = spec.prompts or (
            corpus.vocab.decode(corpus.split("val")[:DEFAULT_PROMPT_CHARS]),
        )
        # Fitted on the training split once per corpus and process (~1 s a MB).
        self.judge = textstats.judge_for(textstats.decode(train_ids, corpus.vocab.chars))

    def log_reference(self, logger: RunLogger) -> None:
        """Held-out text's figures at step 0: what a sample's text-quality figures read against."""
        held_out = textstats.decode(self.val_ids, self.vocab.chars)
        logger.metrics(self.judge.heldout(held_out, DEFAULT_PROMPT_CHARS, self.spec.length), 0)

    def sample(
        self, model: CharRNN, step: int, logger: RunLogger, best: bool = False
    ) -> dict[str, str]:
        """Each prompt's text from `model` at `step`, logged to `logger`; `best`: the model holds
        the best checkpoint's weights, whose files and table are named apart."""
        spec = self.spec
        generator = torch.Generator().manual_seed(spec.seed)
        out: dict[str, str] = {}
        rows: dict[str, list[Any]] = {"step": [], "prompt": [], "sample": []}
        stats = []
        for i, prompt in enumerate(self.prompts):
            ids = torch.from_numpy(self.vocab.encode(prompt)).to(self.device)
            new = model.generate(ids, spec.length, spec.temperature, spec.top_k, generator)
            generated = self.vocab.decode(new)
            stats.append(self.judge.measure(prompt, generated))
            text = prompt + generated
            out[prompt] = text
            name = f"{names.checkpoint_dir_name(step)}-p{i}.txt"
            name = f"{names.BEST_CHECKPOINT}-{name}" if best else name
            logger.artifact_text(name, text, names.ARTIFACT_SAMPLES)
            rows["step"].append(step)
            rows["prompt"].append(prompt)
            rows["sample"].append(text)
        if not best:  # at the best's step they would double a sample step's, or fall between
            logger.metrics(textstats.mean_metrics(stats), step)
        # One table across steps (MLflow appends), so the UI shows runs' samples side by side.
        table = names.ARTIFACT_BEST_SAMPLE_TABLE if best else names.ARTIFACT_SAMPLE_TABLE
        logger.call(lambda: logger.client.log_table(logger.run_id, rows, table))
        return out
