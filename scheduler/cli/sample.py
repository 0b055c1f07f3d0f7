"""`seqq sample`: generate text from a run's checkpoint."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)


def sample(
    run_id: Annotated[str, typer.Argument(help="Run (job) id whose checkpoint to use.")],
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="Text to continue.")] = None,
    length: Annotated[
        int, typer.Option("--length", "-l", min=1, max=100_000, help="New characters.")
    ] = 300,
    temperature: Annotated[
        float, typer.Option("--temperature", "-t", min=1e-3, help="Softmax temperature.")
    ] = 0.8,
    top_k: Annotated[
        int | None, typer.Option("--top-k", min=1, help="Sample among the k likeliest.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed: same seed, same text.")] = 0,
    step: Annotated[
        int | None, typer.Option("--step", min=0, help="Use checkpoint step-N, not final.")
    ] = None,
) -> None:
    """Generate text from a run's final (or chosen) checkpoint, loaded with weights_only.

    Example: `seqq sample 3f2a... --prompt "ROMEO:" --length 200 --seed 1`
    """
    from scheduler import tracking
    from shared.settings import get_settings

    settings = get_settings()
    client = tracking.tracking_client(settings)
    from scheduler.jobs import status

    status(run_id, settings)  # one-line error for an unknown run
    from worker.sample import sample_run  # torch: only this command needs it

    text = sample_run(client, run_id, step, prompt, length, temperature, top_k, seed)
    typer.echo(text)
