"""Tests for scheduler/tracking.py: experiments open as model training, the UI addresses.

The experiment tests use a real MLflow SQLite store; the address tests parse what a person
would paste into a browser and check it names the runs, both losses and the axis.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

from scheduler import tracking
from shared import names
from shared.settings import Settings

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def local_settings(tmp_path: Path) -> Settings:
    return Settings(mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", home=tmp_path)


def route_and_query(url: str) -> tuple[str, dict[str, str]]:
    """The UI route after `#/` and its query, decoded."""
    fragment = urllib.parse.urlsplit(url).fragment
    route, _, query = fragment.partition("?")
    return route, dict(urllib.parse.parse_qsl(query))


def test_ensure_experiment_creates_a_model_training_experiment(tmp_path: Path):
    from mlflow import MlflowClient

    settings = local_settings(tmp_path)
    client = MlflowClient(settings.tracking_uri)
    experiment_id = tracking.ensure_experiment(client, "fresh", settings)
    tags = client.get_experiment(experiment_id).tags
    assert tags[names.TAG_EXPERIMENT_KIND] == "custom_model_development"
    assert tracking.ensure_experiment(client, "fresh", settings) == experiment_id


def test_ensure_experiment_gives_an_older_experiment_the_kind_but_keeps_a_chosen_one(
    tmp_path: Path,
):
    from mlflow import MlflowClient

    settings = local_settings(tmp_path)
    client = MlflowClient(settings.tracking_uri)
    old = client.create_experiment("made-before", artifact_location=(tmp_path / "a").as_uri())
    chosen = client.create_experiment(
        "chosen",
        artifact_location=(tmp_path / "b").as_uri(),
        tags={names.TAG_EXPERIMENT_KIND: "genai_development"},
    )
    tracking.ensure_experiment(client, "made-before", settings)
    tracking.ensure_experiment(client, "chosen", settings)
    assert client.get_experiment(old).tags[names.TAG_EXPERIMENT_KIND] == (
        names.EXPERIMENT_KIND_TRAINING
    )
    assert client.get_experiment(chosen).tags[names.TAG_EXPERIMENT_KIND] == "genai_development"


def test_curves_url_overlays_both_losses_of_every_run_on_mlflows_metric_page(tmp_path: Path):
    url = tracking.curves_url(local_settings(tmp_path), "7", ["run-a", "run-b"], "relative")
    assert url.startswith("http://127.0.0.1:5000/#/metric?")
    route, query = route_and_query(url)
    assert route == "/metric"
    assert json.loads(query["runs"]) == ["run-a", "run-b"]
    assert json.loads(query["experiments"]) == ["7"]
    assert json.loads(query["plot_metric_keys"]) == ["val_loss", "train_loss"]
    assert json.loads(query["metric"]) == "val_loss"
    assert query["x_axis"] == "relative"
    assert query["workflowType"] == "machine_learning"


def test_curves_url_on_a_served_store_uses_the_server_without_its_password():
    settings = Settings(mlflow_uri="https://alice:s3cret@mlflow.example:8443/")
    url = tracking.curves_url(settings, "1", ["r"])
    assert url.startswith("https://alice:***@mlflow.example:8443/#/metric?")
    assert "s3cret" not in url
    assert route_and_query(url)[1]["x_axis"] == "step"


def test_comparison_urls_give_step_and_time_curves_then_the_report_with_the_samples(
    tmp_path: Path,
):
    urls = tracking.comparison_urls(local_settings(tmp_path), "3", ["a", "b"], "parent")
    assert list(urls) == ["loss_vs_step", "loss_vs_time", "samples_side_by_side"]
    assert route_and_query(urls["loss_vs_step"])[1]["x_axis"] == "step"
    assert route_and_query(urls["loss_vs_time"])[1]["x_axis"] == "relative"
    route, query = route_and_query(urls["samples_side_by_side"])
    assert route == f"/experiments/3/runs/parent/artifacts/report/{names.REPORT_FILE}"
    assert query == {"workflowType": "machine_learning"}
    assert "samples_side_by_side" not in tracking.comparison_urls(
        local_settings(tmp_path), "3", ["a", "b"]
    )
