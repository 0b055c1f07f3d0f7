"""A light MLflow client for a tracking server: the REST API 2.0 calls `seqq` makes, over requests.

`import mlflow` costs over a second before the first request; `seqq status`, `list` and `submit`
need a dozen endpoints. This module speaks them directly (as MLflow's own RestStore does, with
the same credentials settings) and returns `scheduler.mlflow_entities` records (`run.info`,
`run.data.tags`, ...), so `scheduler/tracking.py` and `scheduler/jobs.py` serve both clients with
one code path. Its methods are the subset of `MlflowClient` seqq uses, with the same signatures.

Artifacts go through the server's proxied artifact API (`mlflow-artifacts:` locations); a run
whose artifacts live elsewhere (s3://, a local path) is left to MLflow's own artifact stores.
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from scheduler.mlflow_entities import (
    DatasetInput,
    Experiment,
    Param,
    Run,
    RunData,
    RunInfo,
    RunTag,
    StoreError,
)
from shared.errors import ServiceUnavailableError
from shared.settings import mask_url

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
# MLflow sends these extensions as text/plain (mlflow.utils.mime_type_utils); so do we.
TEXT_EXTENSIONS = {"txt", "log", "json", "yaml", "yml", "csv", "tsv", "md", "py", "toml", "xml"}
# Settings only MLflow itself implements (signed or plugin auth, a credentials file): with any
# of them present, the caller uses MlflowClient instead of guessing.
UNSUPPORTED_ENV = ("MLFLOW_TRACKING_AWS_SIGV4", "MLFLOW_TRACKING_AUTH")


def supported() -> bool:
    """False when the environment asks for an authentication only MLflow implements."""
    if any(os.environ.get(name) for name in UNSUPPORTED_ENV):
        return False
    return not (Path.home() / ".mlflow" / "credentials").exists()


def _run(payload: dict[str, Any]) -> Run:
    info, data = payload["info"], payload.get("data", {})
    return Run(
        RunInfo(
            run_id=info["run_id"],
            experiment_id=str(info["experiment_id"]),
            run_name=info.get("run_name"),
            status=info.get("status", "RUNNING"),
            start_time=_int(info.get("start_time")),
            end_time=_int(info.get("end_time")),
            artifact_uri=info.get("artifact_uri", ""),
            lifecycle_stage=info.get("lifecycle_stage", "active"),
            user_id=info.get("user_id"),
        ),
        RunData(
            metrics={m["key"]: float(m["value"]) for m in data.get("metrics", [])},
            params={p["key"]: p.get("value", "") for p in data.get("params", [])},
            tags={t["key"]: t.get("value", "") for t in data.get("tags", [])},
        ),
    )


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _experiment(payload: dict[str, Any]) -> Experiment:
    return Experiment(
        experiment_id=str(payload["experiment_id"]),
        name=payload["name"],
        artifact_location=payload.get("artifact_location", ""),
        lifecycle_stage=payload.get("lifecycle_stage", "active"),
        tags={t["key"]: t.get("value", "") for t in payload.get("tags", [])},
    )


def _pairs(items: dict[str, str] | list[Any] | None) -> list[dict[str, str]]:
    if isinstance(items, dict):
        return [{"key": k, "value": str(v)} for k, v in items.items()]
    return [{"key": i.key, "value": str(i.value)} for i in items or []]


class RestClient:
    """The MlflowClient methods seqq's client uses, spoken to a tracking server over HTTP."""

    def __init__(self, tracking_uri: str, timeout: float = 10.0, retries: int = 2) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # Like MLflow's client: bounded retries with backoff on overload and gateway errors.
        retry = Retry(
            total=retries,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=None,
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self._configure_auth()

    def _configure_auth(self) -> None:
        """MLflow's credential settings (mlflow.utils.credentials), read the same way."""
        env = os.environ
        user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
        if user and password:
            self.session.auth = (user, password)
        elif env.get("MLFLOW_TRACKING_TOKEN"):
            self.session.headers["Authorization"] = f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"
        if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1"):
            self.session.verify = False
        elif env.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
            self.session.verify = env["MLFLOW_TRACKING_SERVER_CERT_PATH"]
        if env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
            self.session.cert = env["MLFLOW_TRACKING_CLIENT_CERT_PATH"]

    def _call(self, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.session.request(
                method, f"{self.tracking_uri}{endpoint}", timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ServiceUnavailableError(
                f"MLflow at {mask_url(self.tracking_uri)} stopped answering "
                f"({exc.__class__.__name__})"
            ) from None
        if response.status_code != 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise StoreError(
                f"{endpoint}: HTTP {response.status_code} "
                f"{body.get('message') or response.reason or ''}".strip(),
                body.get("error_code", "INTERNAL_ERROR"),
                response.status_code,
            )
        return response.json() if response.content else {}

    def _get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        return self._call("GET", f"{API}/{endpoint}", params=params)

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"{API}/{endpoint}", json=body)

    # Experiments.
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            found = self._get("experiments/get-by-name", experiment_name=name)
        except StoreError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return _experiment(found["experiment"])

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> str:
        body: dict[str, Any] = {"name": name, "tags": _pairs(tags)}
        if artifact_location:
            body["artifact_location"] = artifact_location
        return str(self._post("experiments/create", body)["experiment_id"])

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        body = {"experiment_id": experiment_id, "key": key, "value": str(value)}
        self._post("experiments/set-experiment-tag", body)

    def search_experiments(self) -> list[Experiment]:
        """Every active experiment (all pages)."""
        found: list[Experiment] = []
        token = None
        while True:
            body: dict[str, Any] = {"max_results": 1000, "view_type": "ACTIVE_ONLY"}
            if token:
                body["page_token"] = token
            page = self._post("experiments/search", body)
            found += [_experiment(e) for e in page.get("experiments", [])]
            token = page.get("next_page_token")
            if not token:
                return found

    # Runs.
    def get_run(self, run_id: str) -> Run:
        return _run(self._get("runs/get", run_id=run_id)["run"])

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        max_results: int = 1000,
        order_by: list[str] | None = None,
    ) -> list[Run]:
        body = {
            "experiment_ids": experiment_ids,
            "filter": filter_string,
            "run_view_type": "ACTIVE_ONLY",
            "max_results": max_results,
            "order_by": order_by or [],
        }
        return [_run(r) for r in self._post("runs/search", body).get("runs", [])]

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run:
        tags = tags or {}
        body: dict[str, Any] = {
            "experiment_id": experiment_id,
            # As MlflowClient.create_run: the deprecated user_id comes from the mlflow.user tag.
            "user_id": tags.get("mlflow.user", "unknown"),
            "start_time": start_time or int(time.time() * 1000),
            "tags": _pairs(tags),
        }
        if run_name:
            body["run_name"] = run_name
        return _run(self._post("runs/create", body)["run"])

    def log_batch(
        self,
        run_id: str,
        metrics: list[Any] | None = None,
        params: list[Param] | None = None,
        tags: list[RunTag] | None = None,
    ) -> None:
        # The server refuses batches over 100 params; MLflow's client splits them the same way.
        params = list(params or [])
        tags = list(tags or [])
        while True:
            body = {"run_id": run_id, "params": _pairs(params[:100]), "tags": _pairs(tags[:100])}
            self._post("runs/log-batch", {**body, "metrics": []})
            params, tags = params[100:], tags[100:]
            if not params and not tags:
                return

    def log_inputs(self, run_id: str, datasets: list[DatasetInput] | None = None) -> None:
        entries = []
        for item in datasets or []:
            dataset = {
                k: v
                for k, v in vars(item.dataset).items()
                if v is not None  # absent, as protobuf's JSON leaves unset fields
            }
            entries.append({"tags": _pairs(item.tags), "dataset": dataset})
        self._post("runs/log-inputs", {"run_id": run_id, "datasets": entries})

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        body: dict[str, Any] = {"run_id": run_id}
        if status:
            body["status"] = status
        if name:
            body["run_name"] = name
        self._post("runs/update", body)

    def set_terminated(self, run_id: str, status: str = "FINISHED") -> None:
        self._post(
            "runs/update",
            {"run_id": run_id, "status": status, "end_time": int(time.time() * 1000)},
        )

    def delete_run(self, run_id: str) -> None:
        self._post("runs/delete", {"run_id": run_id})

    # Artifacts.
    def artifact_endpoint(self, run: Run) -> str | None:
        """The proxied artifact path of a run, or None when its store is not this server."""
        parts = urlsplit(run.info.artifact_uri)
        if parts.scheme != "mlflow-artifacts" or parts.netloc:
            return None
        return f"{ARTIFACTS_API}/{quote(parts.path.strip('/'))}"

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        endpoint = self.artifact_endpoint(self.get_run(run_id))
        if endpoint is None:
            # Not proxied by the server: MLflow's artifact stores know s3://, gs://, file://, ...
            from mlflow import MlflowClient

            MlflowClient(self.tracking_uri).log_artifact(run_id, local_path, artifact_path)
            return
        name = os.path.basename(local_path)
        target = posixpath.join(endpoint, quote(artifact_path or ""), quote(name))
        extension = os.path.splitext(name)[1].lstrip(".")
        mime = "text/plain" if extension in TEXT_EXTENSIONS else None
        mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
        with open(local_path, "rb") as f:
            self._call("PUT", target.replace("//", "/"), data=f, headers={"Content-Type": mime})

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        directory, name = posixpath.split(artifact_file)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(text, encoding="utf-8")
            self.log_artifact(run_id, str(path), directory or None)
