"""The `seqq` command line: parse, call one function, print.

Importing this package costs only Typer: every command imports what it needs (spec, Celery,
MLflow, torch) inside its body, so `seqq --help` answers at once. Errors from seqq become one
line on stderr and the error's exit code; no command shows a traceback for bad input.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from scheduler.cli import cluster, compare, control, jobs, sample, sweep, train, worker

app = typer.Typer(
    name="seqq",
    help="Train character-level LSTM, RNN and GRU models on a job queue, tracked in MLflow.\n\n"
    "Example: `seqq compare --local --models lstm,rnn --time-budget 2m`",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold URLs with passwords
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
train.register(app)
jobs.register(app)
compare.register(app)
sweep.register(app)
sample.register(app)
worker.register(app)
control.register(app)
cluster.register(app)


def main() -> None:
    """Console entry point: run the app, turning seqq errors into one-line messages."""
    from shared.errors import SeqqError
    from shared.settings import mlflow_env_defaults

    mlflow_env_defaults()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        app(prog_name="seqq")
    except SeqqError as exc:
        from scheduler.cli.display import error

        error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("SEQQ_DEBUG"):
            raise
        from scheduler.cli.display import error

        first = str(exc).splitlines()[0] if str(exc) else ""
        error(f"unexpected {exc.__class__.__name__}: {first} (SEQQ_DEBUG=1 shows the traceback)")
        sys.exit(1)
