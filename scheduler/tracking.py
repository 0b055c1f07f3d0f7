"""The client's side of MLflow: reachability, experiments, datasets and job runs.

Every function imports mlflow inside, so only the commands that talk to the tracking store pay
its start-up cost. The client creates each job's run (status SCHEDULED, params = the flattened
spec, tags, the spec file, the dataset input) before the job is sent, so the run exists - and
can be compared - from the moment of submission.

`writer` and `reader` are the cheap way in for `submit`, `status` and `list`: a tracking server is
spoken to over its REST API (`scheduler.mlflow_rest`) and an embedded store is read with
sqlite3 (`scheduler.mlflow_sqlite`), both without importing mlflow. The functions below take
either that client or an MlflowClient and do the same thing with each.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from shared import names
from shared.dataset import LocalDataset
from shared.errors import ServiceUnavailableError
from shared.settings import Settings, mask_url, mlflow_env_defaults
from shared.spec import TrainSpec
from shared.state import JobState

if TYPE_CHECKING:
    from types import ModuleType

    from mlflow import MlflowClient

    from scheduler.mlflow_rest import RestClient
    from scheduler.mlflow_sqlite import SqliteReader

    # What `writer` and `reader` return.
    Writer = MlflowClient | RestClient
    Reader = MlflowClient | RestClient | SqliteReader


def check_tracking(settings: Settings) -> None:
    """Fail fast, in one line, when the tracking server does not answer."""
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=settings.job_timeout):
                return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailableError(
                f"cannot reach MLflow at {mask_url(uri)} ({reason}); start it with "
                "`mlflow server --backend-store-uri sqlite:///mlflow.db` or set SEQQ_MLFLOW_URI"
            ) from None
    elif settings.tracking_is_local:
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def tracking_client(settings: Settings) -> MlflowClient:
    """An MlflowClient with bounded retries, after a reachability check."""
    mlflow_env_defaults(http_retries=2, http_timeout=settings.job_timeout)
    check_tracking(settings)
    from mlflow import MlflowClient

    return MlflowClient(settings.tracking_uri)


def writer(settings: Settings) -> Writer:
    """The lightest client that creates runs, after a reachability check: the REST client for
    a tracking server; MlflowClient otherwise (an embedded store, a database URI, credentials
    only MLflow implements). Callers use the MlflowClient subset both implement."""
    from scheduler import mlflow_rest

    uri = settings.tracking_uri
    if (
        settings.light_client
        and uri.startswith(("http://", "https://"))
        and mlflow_rest.supported()
    ):
        check_tracking(settings)
        return mlflow_rest.RestClient(uri, timeout=settings.job_timeout)
    return tracking_client(settings)


def reader(settings: Settings) -> Reader:
    """The lightest client that reads runs: as `writer`, but an embedded store is read with
    sqlite3 directly (read-only) when it is one this reader knows."""
    from scheduler import mlflow_sqlite

    if settings.light_client and settings.tracking_is_local:
        found = mlflow_sqlite.open_reader(settings.tracking_uri)
        if found is not None:
            return found
    return writer(settings)


def refusals(client: Reader) -> tuple[type[Exception], ...]:
    """The exceptions with which `client` reports a refusal (no such run, name taken)."""
    if not _is_mlflow(client):
        from scheduler.mlflow_entities import StoreError

        return (StoreError,)
    from mlflow.exceptions import MlflowException

    return (MlflowException,)


def entities(client: Writer) -> ModuleType:
    """The module whose Param, RunTag, Dataset, DatasetInput and InputTag `client` accepts."""
    from scheduler import mlflow_entities

    if not _is_mlflow(client):
        return mlflow_entities
    import mlflow.entities

    return mlflow.entities


def _is_mlflow(client: Reader) -> bool:
    """True for MLflow's own client (checked without importing mlflow: it was, if so)."""
    return type(client).__module__.startswith("mlflow.")


def ensure_experiment(client: Writer, name: str, settings: Settings) -> str:
    """The experiment's id, creating it (with artifacts beside a local store, not in the cwd).

    It carries `names.EXPERIMENT_TAGS`, so MLflow's UI opens it as model training; an
    experiment made by an older seqq gets the ones it lacks when next used (a kind someone
    chose in the UI stays).
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        for key, value in names.EXPERIMENT_TAGS.items():
            if key not in experiment.tags:
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return str(experiment.experiment_id)
    location = None
    if settings.tracking_is_local:
        location = (settings.artifact_root / name).resolve().as_uri()
    try:
        return str(
            client.create_experiment(
                name, artifact_location=location, tags=dict(names.EXPERIMENT_TAGS)
            )
        )
    except refusals(client):  # created concurrently by another client
        again = client.get_experiment_by_name(name)
        if again is None:
            raise
        return str(again.experiment_id)


def publish_dataset(client: Writer, dataset: LocalDataset, settings: Settings) -> str:
    """The artifact URI of the corpus, uploading it only if no earlier upload has its hash."""
    experiment_id = ensure_experiment(client, names.DATASET_EXPERIMENT, settings)
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{names.TAG_DATASET_SHA256}` = '{dataset.sha256}' "
        "and attributes.status = 'FINISHED'",
        max_results=1,
    )
    filename = dataset.path.name
    if found:
        return f"runs:/{found[0].info.run_id}/{names.ARTIFACT_DATASET}/{filename}"
    run = client.create_run(
        experiment_id,
        run_name=f"{dataset.name}-{dataset.sha256[:12]}",
        tags={
            names.TAG_DATASET_SHA256: dataset.sha256,
            names.TAG_DATASET_NAME: dataset.name,
            names.TAG_KIND: "dataset",
        },
    )
    try:
        client.log_artifact(run.info.run_id, str(dataset.path), names.ARTIFACT_DATASET)
    except Exception:
        client.set_terminated(run.info.run_id, JobState.FAILED)
        raise
    client.set_terminated(run.info.run_id, JobState.FINISHED)
    return f"runs:/{run.info.run_id}/{names.ARTIFACT_DATASET}/{filename}"


def create_job_run(
    client: Writer,
    spec: TrainSpec,
    dataset: LocalDataset,
    settings: Settings,
    queue: str,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Create the job's run (SCHEDULED) with params, tags, spec and dataset input; its id."""
    e = entities(client)
    experiment_id = ensure_experiment(client, spec.run.experiment, settings)
    tags = {
        names.TAG_KIND: "job",
        names.TAG_MODEL: spec.model.cell,
        names.TAG_SEED: str(spec.run.seed),
        names.TAG_QUEUE: queue,
        names.TAG_DATASET_SHA256: dataset.sha256,
        names.TAG_DATASET_NAME: dataset.name,
        **spec.run.tags,
        **(extra_tags or {}),
    }
    if spec.trial is not None:  # a sweep's trial: found by its sweep and number
        tags[names.TAG_SWEEP_ID] = spec.trial.sweep
        tags[names.TAG_TRIAL_NUMBER] = str(spec.trial.number)
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name or spec.run.name, tags=tags)
    run_id = run.info.run_id
    try:
        client.log_batch(
            run_id,
            params=[e.Param(k, v) for k, v in spec.flat().items()],
            tags=[e.RunTag(names.TAG_JOB_ID, run_id)],
        )
        client.log_text(
            run_id, json.dumps(spec.model_dump(mode="json"), indent=2), names.ARTIFACT_SPEC
        )
        source = spec.data.uri or str(dataset.path)
        client.log_inputs(
            run_id,
            datasets=[
                e.DatasetInput(
                    e.Dataset(
                        name=dataset.name,
                        digest=dataset.sha256[:16],
                        source_type="seqq",
                        source=source,
                        profile=json.dumps({"num_chars": dataset.n_chars}),
                    ),
                    tags=[e.InputTag("mlflow.data.context", "training")],
                )
            ],
        )
        client.update_run(run_id, status=JobState.SCHEDULED)
    except Exception:
        client.delete_run(run_id)
        raise
    return run_id


def curves_url(
    settings: Settings, experiment_id: str, run_ids: list[str], x_axis: str = "step"
) -> str:
    """Where a person sees the runs' `val_loss` and `train_loss` curves overlaid on one chart.

    MLflow's metric page, against `x_axis`: "step", or "relative" (seconds since each run's
    first point, so runs trained one after another still overlay; "wall" would not).
    """
    query = {
        "runs": json.dumps(run_ids),
        "metric": json.dumps(names.METRIC_VAL_LOSS),
        "experiments": json.dumps([experiment_id]),
        "plot_metric_keys": json.dumps([names.METRIC_VAL_LOSS, names.METRIC_TRAIN_LOSS]),
        "x_axis": x_axis,
    }
    return _ui_address(settings, "/metric", query)


def report_url(settings: Settings, experiment_id: str, parent_run_id: str) -> str:
    """Where a person reads a comparison's report: the table and the samples side by side."""
    route = f"/experiments/{experiment_id}/runs/{parent_run_id}/artifacts/"
    return _ui_address(settings, route + f"{names.ARTIFACT_REPORT}/{names.REPORT_FILE}", {})


def comparison_urls(
    settings: Settings, experiment_id: str, run_ids: list[str], parent_run_id: str | None = None
) -> dict[str, str]:
    """What `seqq compare` points at: the curves against step and time, then the samples."""
    urls = {
        "loss_vs_step": curves_url(settings, experiment_id, run_ids, "step"),
        "loss_vs_time": curves_url(settings, experiment_id, run_ids, "relative"),
    }
    if parent_run_id:
        urls["samples_side_by_side"] = report_url(settings, experiment_id, parent_run_id)
    return urls


def _ui_address(settings: Settings, route: str, query: dict[str, str]) -> str:
    """An MLflow UI address on this store: the server's own UI, or `mlflow ui`'s default."""
    uri = settings.tracking_uri
    base = mask_url(uri).rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"
    # MLflow 3.17 shows GenAI pages unless the address asks for the machine-learning ones.
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    return f"{base}/#{route}?{'&'.join(filter(None, [encoded, names.UI_WORKFLOW_QUERY]))}"


def ui_hint(settings: Settings) -> str:
    """The command that opens the MLflow UI on this store."""
    if settings.tracking_is_local:
        return f"mlflow ui --backend-store-uri {settings.tracking_uri}"
    return f"open {mask_url(settings.tracking_uri)}"
