"""`seqq sample`: generate text from a run's checkpoint or a registered model version."""

from __future__ import annotations

from typing import Annotated

import typer

from scheduler.cli.options import spec_option

# Generation settings mean what they mean in a spec's `sample` group: one source for both.


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)


def sample(
    run_id: Annotated[
        str,
        typer.Argument(
            help="Run (job) id whose checkpoint to use, or models:/NAME/VERSION (or @ALIAS)."
        ),
    ],
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
    """Generate text from a run's final (or chosen) checkpoint, or from a registered model
    version's, loaded with weights_only.

    Examples: `seqq sample 3f2a... --prompt "ROMEO:" --length 200 --seed 1`,
    `seqq sample models:/shakespeare/1 --seed 1`
    """
    from scheduler import registry, tracking
    from shared.errors import SpecError
    from shared.settings import get_settings
    from shared.spec import build_spec

    given = {"length": length, "temperature": temperature, "top_k": top_k, "seed": seed}
    # Validated as a spec's sample group: a bad value is a one-line error naming the field.
    chosen = build_spec({}, {f"sample.{k}": v for k, v in given.items()}).sample
    ref = registry.parse_model_uri(run_id) if registry.is_model_uri(run_id) else None
    if ref is not None and step is not None:
        raise SpecError("--step: a registered model version is one checkpoint; drop --step")
    settings = get_settings()
    client = tracking.tracking_client(settings)
    if ref is not None:
        import tempfile
        from pathlib import Path

        from worker.sample import sample_file  # torch: only this command needs it

        with tempfile.TemporaryDirectory(prefix="seqq-sample-") as tmp:
            path = registry.download_checkpoint(client, ref, settings.tracking_uri, Path(tmp))
            text = sample_file(
                path, prompt, chosen.length, chosen.temperature, chosen.top_k, chosen.seed
            )
        typer.echo(text)
        return
    from scheduler.jobs import status

    status(run_id, settings)  # one-line error for an unknown run
    from worker.sample import sample_run  # torch: only this command needs it

    text = sample_run(
        client, run_id, step, prompt, chosen.length, chosen.temperature, chosen.top_k, chosen.seed
    )
    typer.echo(text)
