"""Wire names: everything two processes must spell the same way.

Task names, queue names, MLflow tag and metric keys and Redis key prefixes are protocol, not
implementation details: a client on one machine and a worker on another agree on these strings
and nothing else. Change one here and both sides follow; never spell one inline elsewhere.
"""

from __future__ import annotations

# Celery task names (sent by name: the client never imports the worker).
TASK_TRAIN = "seqq.train"
TASK_REAP = "seqq.reap"
TASK_PING = "seqq.ping"
TASK_SWEEP_ADVANCE = "seqq.sweep.advance"  # control queue: move a queue sweep on

# Queues. Jobs route by the spec's device to `cpu` or `gpu`; a priority other than normal
# adds a suffix (`gpu.high`, `cpu.low`). Workers drain high, then normal, then low.
QUEUE_CPU = "cpu"
QUEUE_GPU = "gpu"
PRIORITIES = ("high", "normal", "low")


def queue_name(kind: str, priority: str = "normal") -> str:
    """The queue for a device kind (cpu, gpu) and a priority (high, normal, low)."""
    return kind if priority == "normal" else f"{kind}.{priority}"


def drain_order(kind: str) -> list[str]:
    """The queues a worker of this kind consumes, most urgent first."""
    return [queue_name(kind, p) for p in PRIORITIES]


QUEUES = (*drain_order(QUEUE_CPU), *drain_order(QUEUE_GPU))
QUEUE_CONTROL = "control"  # the control plane's own tasks (the reaper), never training

# MLflow experiments.
DEFAULT_EXPERIMENT = "seqq"
DATASET_EXPERIMENT = "seqq-datasets"
# Tags every seqq experiment is created with, by every path that creates one. MLflow 3's UI
# opens an experiment without a kind on its GenAI pages (traces, token usage: all empty for
# seqq); this kind opens it on the training runs and their metric charts.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"
EXPERIMENT_TAGS = {TAG_EXPERIMENT_KIND: EXPERIMENT_KIND_TRAINING}
# MLflow 3.17's UI takes the kind from its GenAI / machine-learning switch instead, which an
# address sets with this query parameter.
UI_WORKFLOW_QUERY = "workflowType=machine_learning"

# MLflow tags.
TAG_JOB_ID = "seqq.job_id"
TAG_KIND = "seqq.kind"  # "job" for a training run, "dataset" for an uploaded corpus
TAG_MODEL = "seqq.model"
TAG_SEED = "seqq.seed"  # the spec's run.seed, so a comparison's runs are found by model and seed
TAG_DATASET_SHA256 = "seqq.dataset.sha256"
TAG_DATASET_NAME = "seqq.dataset.name"
TAG_QUEUE = "seqq.queue"
QUEUE_LOCAL = "local"  # the seqq.queue tag of jobs trained in-process by `seqq run`
TAG_WORKER_HOST = "seqq.worker.host"
TAG_DEVICE = "seqq.device"
TAG_PRECISION = "seqq.precision"
TAG_TORCH_VERSION = "seqq.torch_version"
TAG_TORCH_THREADS = "seqq.torch_threads"  # torch's intra-op threads for this job (its core share)
TAG_SEQQ_VERSION = "seqq.version"
TAG_ERROR = "seqq.error"
TAG_RESUMES = "seqq.resumes"
TAG_NUM_PARAMS = "seqq.num_params"
TAG_COMPARE_MODELS = "seqq.compare.models"
TAG_COMPARE_SEEDS = "seqq.compare.seeds"  # on a comparison's parent: the seeds every model ran
# On a tuned comparison's parent (`seqq compare --tune`): each model's sweep budget in seconds.
# Its sweeps' parent runs are its children, tagged TAG_MODEL with the cell they tuned.
TAG_COMPARE_TUNE = "seqq.compare.tune"
TAG_STEPS = "seqq.steps"  # optimizer steps trained when the run ended
TAG_STOPPED_EARLY_AT = "seqq.stopped_early_at"  # the step at which optim.patience ended training
TAG_DATA_CACHE = "seqq.data.cache"  # "hit" when the worker reused encoded ids, else "miss"
TAG_LOCAL_OWNER = "seqq.local.owner"  # "pid:start-ticks" of the `seqq run` process training it
TAG_REQUEUES = "seqq.requeues"  # times the reaper re-queued the job after its worker vanished
TAG_GIT_COMMIT = "mlflow.source.git.commit"
# Sweeps: the sweep id is its parent run's id; each trial is a child run and a study trial.
TAG_SWEEP_ID = "seqq.sweep.id"  # on the parent run and on every trial's run
TAG_SWEEP_STORAGE = "seqq.sweep.storage"  # where its study lives: "file" or "redis"
TAG_SWEEP_BEST_TRIAL = "seqq.sweep.best_trial"  # the best COMPLETE trial's number
TAG_SWEEP_BEST_RUN = "seqq.sweep.best_run_id"  # and its run
TAG_TRIAL_NUMBER = "seqq.trial.number"
TAG_TRIAL_STATE = "seqq.trial.state"  # shared.state.TrialState, set as the trial's job ends
TAG_TRIAL_PRUNED_STEP = "seqq.trial.pruned_step"  # the evaluation at which it was pruned
KIND_SWEEP = "sweep"  # the seqq.kind of a sweep's parent run
KIND_COMPARE = "compare"  # the seqq.kind of a comparison's parent run
# A registered model version (`seqq sweep --register`) carries TAG_SWEEP_ID, TAG_SWEEP_BEST_TRIAL
# and its validation loss; the parent run names the version it registered.
TAG_MODEL_VAL_LOSS = "seqq.sweep.best_val_loss"
TAG_SWEEP_REGISTERED = "seqq.sweep.registered"  # on the parent run: models:/NAME/VERSION
MODELS_URI_SCHEME = "models:/"  # MLflow's Model Registry URIs: models:/NAME/VERSION, @ALIAS

# MLflow metric keys. Shared by every model so the UI overlays runs' curves.
METRIC_TRAIN_LOSS = "train_loss"
METRIC_VAL_LOSS = "val_loss"
METRIC_VAL_BPC = "val_bpc"
METRIC_LR = "lr"
METRIC_TOKENS_PER_SEC = "tokens_per_sec"
METRIC_TEST_LOSS = "test_loss"
METRIC_TEST_BPC = "test_bpc"
METRIC_ELAPSED = "elapsed_s"
METRIC_VAL_ELAPSED = "val_elapsed_s"  # training wall time at each validation (loss vs time)
METRIC_TRAIN_TIME = "train_time_s"
METRIC_CHARS_PER_SEC = "chars_per_sec"
METRIC_PREPROCESS_TIME = "preprocess_s"  # fetch, verify, encode (or load from the cache)
METRIC_SUBMIT_TO_FIRST_STEP = "submit_to_first_step_s"  # queueing + start-up, fresh runs only
# A job: its best validation loss, at its end; a sweep's parent run: its best trial's value.
METRIC_BEST_VAL_LOSS = "best_val_loss"
METRIC_TRIAL_REPORT_S = "trial_report_s"  # a trial's seconds in report + should_prune, this attempt
METRIC_BEST_STEP = "best_step"  # the step of a job's best validation loss (its best checkpoint)
METRIC_TEST_LOSS_BEST = "test_loss_best"  # the test loss of the best checkpoint's weights
METRIC_TEST_BPC_BEST = "test_bpc_best"
# Text quality (worker/textstats.py says how each is measured): at each sample step, the mean
# over its prompts of the generated part's measures; once, at step 0, the same measures on
# held-out text, windows of the validation split as long as a sample, to read them against.
METRIC_SAMPLE_WORD_SHARE = "sample_word_share"  # share of generated words in the training text
METRIC_SAMPLE_REF_BPC = "sample_ref_bpc"  # bits/char under a char n-gram fitted on train
METRIC_SAMPLE_COPY_SPAN = "sample_copy_span"  # longest run of chars copied from the train text
METRIC_SAMPLE_REPETITION = "sample_repetition"  # share of word 3-grams repeating an earlier one
METRIC_HELDOUT_WORD_SHARE = "heldout_word_share"
METRIC_HELDOUT_REF_BPC = "heldout_ref_bpc"
METRIC_HELDOUT_COPY_SPAN = "heldout_copy_span"
METRIC_HELDOUT_REPETITION = "heldout_repetition"
TEXT_METRICS = {  # each sample measure, and the held-out text's that it reads against
    METRIC_SAMPLE_WORD_SHARE: METRIC_HELDOUT_WORD_SHARE,
    METRIC_SAMPLE_REF_BPC: METRIC_HELDOUT_REF_BPC,
    METRIC_SAMPLE_COPY_SPAN: METRIC_HELDOUT_COPY_SPAN,
    METRIC_SAMPLE_REPETITION: METRIC_HELDOUT_REPETITION,
}

# Artifact paths inside a run.
ARTIFACT_SPEC = "spec.json"
ARTIFACT_VOCAB = "vocab.json"
ARTIFACT_CHECKPOINTS = "checkpoints"
ARTIFACT_SAMPLES = "samples"
ARTIFACT_SAMPLE_TABLE = "samples.json"
ARTIFACT_BEST_SAMPLE_TABLE = "samples_best.json"  # the same prompts, from the best checkpoint
ARTIFACT_REPORT = "report"  # a comparison's parent run: the report and its plots
REPORT_FILE = "report.md"
ARTIFACT_DATASET = "dataset"
ARTIFACT_TRIALS = "trials.json"  # a sweep's parent run: the trials table (mlflow.log_table)
ARTIFACT_SWEEP_PLOTS = "plots"  # a sweep's parent run: Optuna's plots, one PNG each
ARTIFACT_BEST = "best.json"  # a sweep's parent run: the best trial, its values and run
ARTIFACT_TUNE = "tune.json"  # a tuned comparison's parent: budgets, each model's sweep and values
CHECKPOINT_FILE = "checkpoint.pt"
FINAL_CHECKPOINT = "final"
BEST_CHECKPOINT = "best"  # the weights of the lowest validation loss (overwritten as it improves)

# Optuna study and trial user attributes seqq writes (read by the driver, the worker, status).
STUDY_ATTR_SWEEP = "seqq.sweep"  # the sweep file (base spec, space, settings) as JSON
TRIAL_ATTR_RUN_ID = "seqq.run_id"  # the trial's MLflow run (= job id), set when it starts
TRIAL_ATTR_ELAPSED = "seqq.elapsed_s"  # a trial's training seconds at its last evaluation
TRIAL_ATTR_ERROR = "seqq.error"  # why a FAILED trial failed
TRIAL_ATTR_BASE = "seqq.base"  # the trial that trains the base spec's own values (try_base)
TRIAL_ATTR_SENT = "seqq.sent"  # a queue sweep's trial: its job was handed to the broker
STUDY_ATTR_DISPATCH = "seqq.dispatch"  # a queue sweep: queue, parallel, dataset, register

# Celery custom state carrying live progress in its meta.
STATE_PROGRESS = "PROGRESS"

# Redis keys.
REDIS_PREFIX = "seqq:"


def cancel_key(job_id: str) -> str:
    """Redis key whose presence asks the job to stop (survives worker restarts)."""
    return f"{REDIS_PREFIX}cancel:{job_id}"


def lease_key(job_id: str) -> str:
    """Redis key holding the lease of the worker that trains this job."""
    return f"{REDIS_PREFIX}lease:{job_id}"


def shutdown_key(worker_hostname: str) -> str:
    """Redis key set while a worker shuts down: its jobs checkpoint and go back to the queue."""
    return f"{REDIS_PREFIX}shutdown:{worker_hostname}"


SUSPECTS_KEY = f"{REDIS_PREFIX}reaper:suspects"  # job id -> when its lease was first seen gone


def sweep_journal_prefix(sweep_id: str) -> str:
    """Redis key prefix of a sweep's study journal (Optuna's JournalRedisBackend adds `:...`)."""
    return f"{REDIS_PREFIX}sweep:{sweep_id}"


SWEEPS_ACTIVE_KEY = f"{REDIS_PREFIX}sweeps:active"  # ids of queue sweeps not yet ended
SCHEDULER_KEY = f"{REDIS_PREFIX}scheduler"  # set by a live `seqq scheduler`, with a TTL


def sweep_lock_key(sweep_id: str) -> str:
    """Redis lock held by whoever advances a queue sweep (one at a time)."""
    return f"{REDIS_PREFIX}sweep-lock:{sweep_id}"


def worker_key(name: str) -> str:
    """Redis key under which a live worker announces itself (expires when it dies)."""
    return f"{REDIS_PREFIX}worker:{name}"


def checkpoint_dir_name(step: int) -> str:
    """Folder name of the checkpoint taken after `step` optimizer steps."""
    return f"step-{step:08d}"
