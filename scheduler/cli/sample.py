"""`seqq sample`: generate text from a run's checkpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from scheduler.cli.options import spec_option

# Generation settings mean what they mean in a spec's `sample` group: one source for both.


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)


def sample(
    run_id: Annotated[str, typer.Argument(help="Run (job) id whose checkpoint to use.")],
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="Text to continue.")] = None,
    length: Annotated[int | None, spec_option("sample.length", ("--length", "-l"), None)] = None,
    temperature: Annotated[
        float | None, spec_option("sample.temperature", ("--temperature", "-t"), None)
    ] = None,
    top_k: Annotated[int | None, spec_option("sample.top_k", ("--top-k",), None)] = None,
    seed: Annotated[int | None, spec_option("sample.seed", ("--seed",), None)] = None,
    step: Annotated[
        int | None, typer.Option("--step", min=0, help="Use checkpoint step-N, not final.")
    ] = None,
) -> None:
    """Generate text from a run's final (or chosen) checkpoint, loaded with weights_only.

    Example: `seqq sample 3f2a... --prompt "ROMEO:" --length 200 --seed 1`
    """
    from scheduler import tracking
    from shared.settings import get_settings
    from shared.spec import build_spec

    given = {"length": length, "temperature": temperature, "top_k": top_k, "seed": seed}
    # Validated as a spec's sample group: a bad value is a one-line error naming the field.
    chosen = build_spec({}, {f"sample.{k}": v for k, v in given.items()}).sample
    settings = get_settings()
    client = tracking.tracking_client(settings)
    from scheduler.jobs import status

    status(run_id, settings)  # one-line error for an unknown run
    from worker.sample import sample_run  # torch: only this command needs it

    text = sample_run(
        client, run_id, step, prompt, chosen.length, chosen.temperature, chosen.top_k, chosen.seed
    )
    typer.echo(text)
