"""One job, start to end: the function both `seqq run` (embedded) and the Celery task call.

It re-validates the spec, marks the MLflow run RUNNING with the worker's tags, resolves and
preprocesses the data, builds the model, resumes from the newest checkpoint the job has,
trains, and ends the run FINISHED, KILLED (cancelled) or FAILED with the reason in a tag.
Whatever happens, the run is never left RUNNING by a job that returns or raises. A job whose
spec names a sweep trial also reports to that trial's study (`worker.trial`): it may be pruned
(KILLED, tagged PRUNED), and its end is told to the study once the run has ended.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError

from shared import names
from shared.dataset import sha256_file
from shared.errors import (
    JobCancelledError,
    JobPreemptedError,
    LeaseLostError,
    SeqqError,
    SpecError,
    TrialPrunedError,
)
from shared.settings import Settings, get_settings, usable_cores
from shared.spec import TrainSpec, format_validation_error
from shared.state import TERMINAL, JobState, TrialState
from worker import checkpoint
from worker.data import load_corpus
from worker.dataset import fetch_dataset
from worker.model import CharRNN
from worker.tracking import RunLogger, configure_mlflow_env, is_permanent, with_retry
from worker.train import Reporter, Trainer, resolve_device, resolve_precision

if TYPE_CHECKING:
    from worker.trial import TrialReporter

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    """How a job ended, as the Celery result and `seqq run` summary carry it."""

    job_id: str
    status: JobState
    step: int = 0
    final_val_loss: float | None = None
    best_val_loss: float | None = None
    best_step: int | None = None  # the step of the best validation loss: the best checkpoint's
    test_loss: float | None = None
    test_loss_best: float | None = None  # the best checkpoint's test loss, beside the final one
    stopped_early_at: int | None = None  # the step at which optim.patience ended training
    elapsed_s: float | None = None
    chars_per_s: float | None = None
    device: str | None = None
    precision: str | None = None
    error: str | None = None
    trial_state: str | None = None  # a sweep trial's end: COMPLETE, PRUNED or FAILED

    def as_dict(self) -> dict[str, Any]:
        # JSON has no NaN/inf: send None instead. A lone job's outcome has no trial key.
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
            if k != "trial_state" or v is not None
        }


@lru_cache(maxsize=1)
def seqq_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seqq")
    except PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of seqq's own source when it runs from a git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def warm_up() -> None:
    """One-off costs of a fresh pool process, paid before a job arrives: version lookups and
    a tiny CPU forward/backward through each cell (torch's thread pool, oneDNN kernels)."""
    seqq_version()
    git_commit()
    configure_threads(get_settings())
    for cell in ("lstm", "rnn", "gru"):
        model = CharRNN(8, cell, 4, 8, 1)
        logits, _ = model(torch.zeros(2, 3, dtype=torch.long))
        logits.sum().backward()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def configure_threads(settings: Settings) -> None:
    """Torch threads = this job's share of the cores (never oversubscribe)."""
    torch.set_num_threads(max(1, settings.torch_threads or usable_cores()))


def run_job(
    job_id: str,
    spec_data: dict[str, Any] | TrainSpec,
    reporter: Reporter,
    settings: Settings | None = None,
) -> JobOutcome:
    """Train the job's spec into its MLflow run (run id = job id); never leaves it RUNNING.

    Ends FINISHED, FAILED (reason in `seqq.error`) or KILLED; PREEMPTED leaves the run
    SCHEDULED with a fresh checkpoint for the next worker; a copy that finds the run already
    ended, or loses its lease, stands down without touching the run.
    """
    settings = settings or get_settings()
    configure_mlflow_env()
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    try:
        run = with_retry(client.get_run, job_id, deadline_s=600)
    except Exception as exc:
        if not is_permanent(exc):
            raise
        log.error("job %s has no MLflow run; refusing it", job_id)
        return JobOutcome(job_id, JobState.STOOD_DOWN, error="no such run")
    if run.info.status in TERMINAL:
        log.info("job %s already %s; standing down", job_id, run.info.status)
        return JobOutcome(job_id, JobState.STOOD_DOWN, error=f"already {run.info.status}")

    logger: RunLogger | None = None
    trainer: Trainer | None = None
    trial: TrialReporter | None = None
    outcome = JobOutcome(job_id, JobState.FAILED)
    try:
        try:
            spec = (
                spec_data
                if isinstance(spec_data, TrainSpec)
                else TrainSpec.model_validate(spec_data)
            )
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc)) from None
        if reporter.stop_reason() == "cancel":
            raise JobCancelledError("cancelled before it started")
        if spec.trial is not None:
            from worker.trial import TrialReporter  # optuna: only a trial's job pays for it

            trial = TrialReporter.open(spec.trial, job_id, settings)
        configure_threads(settings)
        device = resolve_device(spec.device)
        precision = resolve_precision(spec.precision, device)
        outcome.device, outcome.precision = device_name(device), precision
        _start_run(client, run, outcome)
        resume_path = checkpoint.newest(client, job_id, settings.checkpoint_dir)
        resume = checkpoint.load(resume_path) if resume_path else None
        # Anything the run already logged (a resume, or a restart from scratch after a crash
        # before the first checkpoint) is not logged again, so no curve has a step twice.
        logged_until = _logged_until(client, run)
        if trial is not None:
            logged_until = trial.reconcile(client, job_id, logged_until)
        logger = RunLogger(client, job_id, logged_until=logged_until)
        if resume is not None:
            resumes = int(run.data.tags.get(names.TAG_RESUMES, "0")) + 1
            logger.call(lambda: client.set_tag(job_id, names.TAG_RESUMES, str(resumes)))
            log.info("job %s resumes from step %s (resume %d)", job_id, resume["step"], resumes)

        preprocess_start = time.monotonic()
        path = fetch_dataset(spec.data, settings)
        sha = spec.data.sha256 or sha256_file(path)
        corpus = load_corpus(path, sha, spec.data, settings.cache_dir / "encoded")
        cache = "hit" if corpus.cache_hit else "miss"
        logger.call(lambda: client.set_tag(job_id, names.TAG_DATA_CACHE, cache))
        if resume is None:
            preprocess_s = time.monotonic() - preprocess_start
            logger.metrics({names.METRIC_PREPROCESS_TIME: preprocess_s}, 0)
        log.info("job %s: corpus ready (%s ids, cache %s)", job_id, f"{len(corpus.ids):,}", cache)
        logger.artifact_text(names.ARTIFACT_VOCAB, json.dumps({"chars": corpus.vocab.chars}))

        torch.manual_seed(spec.run.seed)
        model = CharRNN.from_spec(spec.model, corpus.vocab.size)
        n_params = str(model.num_parameters())
        logger.call(lambda: client.set_tag(job_id, names.TAG_NUM_PARAMS, n_params))
        ckpt_dir = settings.checkpoint_dir / job_id
        trainer = Trainer(
            spec, corpus, model, device, precision, logger, reporter, ckpt_dir, resume, trial
        )
        trainer.submitted_at = run.info.start_time / 1000 if run.info.start_time else None
        result = trainer.run()
        outcome.status = JobState.FINISHED
        outcome.final_val_loss = result.final_val_loss
        outcome.best_val_loss = result.best_val_loss
        outcome.best_step = result.best_step
        outcome.test_loss = result.test_loss
        outcome.test_loss_best = result.test_loss_best
        outcome.stopped_early_at = result.step if result.stopped_early else None
        outcome.elapsed_s = result.elapsed_s
        outcome.chars_per_s = result.chars_per_s
    except JobCancelledError as exc:
        outcome.status, outcome.error = JobState.KILLED, str(exc)
    except JobPreemptedError as exc:
        outcome.status, outcome.error = JobState.PREEMPTED, str(exc)
    except TrialPrunedError:
        # Stopped on purpose before its end, its checkpoint kept, like a cancel: KILLED (a
        # FINISHED run promises a test loss and a final model). The tag says PRUNED.
        outcome.status = JobState.KILLED
    except LeaseLostError:
        outcome.status = JobState.STOOD_DOWN
    except SeqqError as exc:
        outcome.status, outcome.error = JobState.FAILED, str(exc)
    except Exception as exc:  # an unexpected bug: still end the run, with the reason
        log.exception("job %s crashed", job_id)
        outcome.status, outcome.error = JobState.FAILED, f"{exc.__class__.__name__}: {exc}"
    except KeyboardInterrupt:
        outcome.status, outcome.error = JobState.KILLED, "interrupted"
        raise
    finally:
        if trainer is not None:
            outcome.step = trainer.step
        _finish(client, job_id, logger, outcome, settings, trial)
    return outcome


def _start_run(client: Any, run: Any, outcome: JobOutcome) -> None:
    """Tag the run with where and how it trains, and mark it RUNNING."""
    from mlflow.entities import RunTag

    tags = {
        names.TAG_WORKER_HOST: socket.gethostname(),
        names.TAG_DEVICE: outcome.device or "",
        names.TAG_PRECISION: outcome.precision or "",
        names.TAG_TORCH_VERSION: torch.__version__,
        names.TAG_TORCH_THREADS: str(torch.get_num_threads()),
        names.TAG_SEQQ_VERSION: seqq_version(),
    }
    if commit := git_commit():
        tags[names.TAG_GIT_COMMIT] = commit
    run_id = run.info.run_id
    with_retry(client.log_batch, run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    with_retry(client.update_run, run_id, status=JobState.RUNNING)


def _logged_until(client: Any, run: Any) -> dict[str, int]:
    """The last step logged for each metric, so a resumed job never logs a step twice."""
    return {
        key: max(m.step for m in with_retry(client.get_metric_history, run.info.run_id, key))
        for key in run.data.metrics
    }


def _finish(
    client: Any,
    job_id: str,
    logger: RunLogger | None,
    outcome: JobOutcome,
    settings: Settings,
    trial: TrialReporter | None = None,
) -> None:
    """Deliver everything queued, then end the run with its status (and reason); then tell a
    trial's study how it ended (MLflow first: see `worker.trial`)."""
    if outcome.status == JobState.STOOD_DOWN:
        if logger is not None:
            logger.discard()  # another worker owns the run now: send nothing more
        return
    if trial is not None and logger is not None:  # what being a trial cost this attempt
        logger.metrics({names.METRIC_TRIAL_REPORT_S: trial.seconds}, outcome.step or 0)
    if logger is not None and not logger.close(timeout=600):
        outcome.status = JobState.FAILED
        outcome.error = (outcome.error or "") + " (some metrics could not be delivered to MLflow)"
    if outcome.status == JobState.PREEMPTED:
        # Back in the queue: the next worker resumes from the checkpoint just uploaded.
        with_retry(client.update_run, job_id, status=JobState.SCHEDULED)
        return
    if outcome.error:
        with_retry(client.set_tag, job_id, names.TAG_ERROR, outcome.error[:5000])
    if outcome.step:
        with_retry(client.set_tag, job_id, names.TAG_STEPS, str(outcome.step))
    if outcome.stopped_early_at is not None:
        stopped = str(outcome.stopped_early_at)
        with_retry(client.set_tag, job_id, names.TAG_STOPPED_EARLY_AT, stopped)
    state = trial.ending(outcome.status) if trial is not None else None
    if trial is not None and state is not None:
        with_retry(client.set_tag, job_id, names.TAG_TRIAL_STATE, state.value)
        if state == TrialState.PRUNED:
            pruned = str(trial.pruned_step)
            with_retry(client.set_tag, job_id, names.TAG_TRIAL_PRUNED_STEP, pruned)
    with_retry(client.set_terminated, job_id, outcome.status)
    if trial is not None and state is not None:
        try:
            trial.end(state, outcome.best_val_loss, outcome.error)
            outcome.trial_state = state.value
        except Exception:  # the run is the record; whoever drives the sweep reconciles
            log.exception("job %s: could not tell its study that the trial ended", job_id)
    # Every checkpoint is in MLflow now; the worker's local copies are no longer needed.
    shutil.rmtree(settings.checkpoint_dir / job_id, ignore_errors=True)
