"""Read an embedded (SQLite) MLflow store directly, read-only, for `seqq status` and `seqq list`.

Opening the store through MLflow imports SQLAlchemy, Alembic and MLflow's store (about two
seconds) to run three SELECTs. This reader runs them with sqlite3 on a read-only connection and
returns the records `scheduler.mlflow_rest` returns (`scheduler.mlflow_entities`), so one code
path serves both. It never writes and never migrates: `open_reader` answers None for a store it
does not recognise (missing, not yet migrated, workspaces on), and the caller uses MLflow.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from scheduler.mlflow_entities import Experiment, Run, RunData, RunInfo, StoreError

# The columns this reader reads; a store without them is left to MLflow.
NEEDED = {
    "experiments": {"experiment_id", "name", "artifact_location", "lifecycle_stage"},
    "experiment_tags": {"key", "value", "experiment_id"},
    "runs": {"run_uuid", "name", "status", "start_time", "end_time", "lifecycle_stage"},
    "tags": {"key", "value", "run_uuid"},
    "params": {"key", "value", "run_uuid"},
    "latest_metrics": {"key", "value", "is_nan", "run_uuid"},
}
DEFAULT_WORKSPACE = "default"
TAG_EQUALS = re.compile(r"^tags\.`([^`]+)` = '([^']*)'$")
STATUS_EQUALS = re.compile(r"^attributes\.status = '([A-Z]+)'$")
RUN_COLUMNS = (
    "run_uuid, experiment_id, name, status, start_time, end_time, artifact_uri, "
    "lifecycle_stage, user_id"
)


def open_reader(tracking_uri: str) -> SqliteReader | None:
    """A reader for this sqlite:/// store, or None when MLflow itself must open it."""
    if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() in ("true", "1"):
        return None
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    if not tracking_uri.startswith("sqlite:///") or not path.is_file():
        return None
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10, isolation_level=None
        )
        columns = {
            table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for table in NEEDED
        }
    except sqlite3.Error:
        return None
    if any(not needed <= columns[table] for table, needed in NEEDED.items()):
        conn.close()
        return None
    return SqliteReader(conn, has_workspaces="workspace" in columns["experiments"])


class SqliteReader:
    """The read-only MlflowClient methods `seqq status` and `seqq list` use, over sqlite3."""

    def __init__(self, conn: sqlite3.Connection, has_workspaces: bool) -> None:
        self.conn = conn
        self.workspace_clause = " AND workspace = ?" if has_workspaces else ""
        self.workspace_args = (DEFAULT_WORKSPACE,) if has_workspaces else ()

    def _experiments(self, where: str, args: tuple[str, ...]) -> list[Experiment]:
        rows = self.conn.execute(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments "
            f"WHERE {where}{self.workspace_clause} ORDER BY experiment_id",
            (*args, *self.workspace_args),
        )
        found = [Experiment(str(i), name, loc or "", stage) for i, name, loc, stage in rows]
        for experiment in found:
            experiment.tags.update(
                self.conn.execute(
                    "SELECT key, value FROM experiment_tags WHERE experiment_id = ?",
                    (int(experiment.experiment_id),),
                )
            )
        return found

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self._experiments("name = ?", (name,))
        return found[0] if found else None

    def search_experiments(self) -> list[Experiment]:
        return self._experiments("lifecycle_stage = ?", ("active",))

    def get_run(self, run_id: str) -> Run:
        runs = self._runs("run_uuid = ?", [run_id], "", None)
        if not runs:
            raise StoreError(f"run {run_id} not found", "RESOURCE_DOES_NOT_EXIST", 404)
        return runs[0]

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        max_results: int = 1000,
        order_by: list[str] | None = None,
    ) -> list[Run]:
        """The forms seqq's client sends: `tags.`k` = 'v'` and `attributes.status = 'S'`
        clauses joined by `and`, ordered by start time (MLflow breaks ties by run id)."""
        where = ["lifecycle_stage = 'active'", f"experiment_id IN ({_marks(experiment_ids)})"]
        args: list[str | int] = [int(e) for e in experiment_ids]
        for clause in filter(None, (c.strip() for c in filter_string.split(" and "))):
            if tag := TAG_EQUALS.match(clause):
                where.append("run_uuid IN (SELECT run_uuid FROM tags WHERE key = ? AND value = ?)")
                args += [tag[1], tag[2]]
            elif status := STATUS_EQUALS.match(clause):
                where.append("status = ?")
                args.append(status[1])
            else:
                raise ValueError(f"filter not supported by the direct reader: {clause!r}")
        if order_by not in (None, [], ["attributes.start_time DESC"]):
            raise ValueError(f"order not supported by the direct reader: {order_by!r}")
        return self._runs(" AND ".join(where), args, "start_time DESC, run_uuid", max_results)

    def _runs(self, where: str, args: list[str | int], order: str, limit: int | None) -> list[Run]:
        query = f"SELECT {RUN_COLUMNS} FROM runs WHERE {where}"
        if order:
            query += f" ORDER BY {order}"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        # One read transaction: the runs and their tags, params and metrics are one snapshot.
        self.conn.execute("BEGIN")
        try:
            rows = self.conn.execute(query, args).fetchall()
            ids = [row[0] for row in rows]
            tags = self._pairs("tags", ids)
            params = self._pairs("params", ids)
            metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
            for run_id, key, value, is_nan in self.conn.execute(
                "SELECT run_uuid, key, value, is_nan FROM latest_metrics "
                f"WHERE run_uuid IN ({_marks(ids)})",
                ids,
            ):
                metrics[run_id][key] = float("nan") if is_nan else float(value)
        finally:
            self.conn.rollback()
        return [
            Run(
                RunInfo(
                    run_id=run_id,
                    experiment_id=str(experiment_id),
                    run_name=name,
                    status=status,
                    start_time=start,
                    end_time=end,
                    artifact_uri=artifact_uri or "",
                    lifecycle_stage=stage,
                    user_id=user,
                ),
                RunData(metrics[run_id], params[run_id], tags[run_id]),
            )
            for run_id, experiment_id, name, status, start, end, artifact_uri, stage, user in rows
        ]

    def _pairs(self, table: str, ids: list[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {i: {} for i in ids}
        for run_id, key, value in self.conn.execute(
            f"SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN ({_marks(ids)})", ids
        ):
            found[run_id][key] = value
        return found


def _marks(items: list[str]) -> str:
    return ", ".join("?" * len(items))
