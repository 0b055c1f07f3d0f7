"""`seqq sample`: generate text from a run's checkpoint or a registered model version."""

from __future__ import annotations

from typing import Annotated

import typer

from scheduler.cli.options import spec_option
from shared import names

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
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            "-c",
            help="Which of the run's checkpoints: best (the lowest validation loss), final, or "
            "a step (500). Default: best when the run has one, else final.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate text from a run's best checkpoint (or the one chosen), or from a registered
    model version's, loaded with weights_only. Which checkpoint it used goes to stderr.

    Examples: `seqq sample 3f2a... --prompt "ROMEO:" --length 200 --seed 1`,
    `seqq sample 3f2a... --checkpoint final`, `seqq sample models:/shakespeare/1 --seed 1`
    """
    from scheduler import registry, tracking
    from shared.errors import SpecError
    from shared.settings import get_settings
    from shared.spec import build_spec

    given = {"length": length, "temperature": temperature, "top_k": top_k, "seed": seed}
    # Validated as a spec's sample group: a bad value is a one-line error naming the field.
    chosen = build_spec({}, {f"sample.{k}": v for k, v in given.items()}).sample
    ref = registry.parse_model_uri(run_id) if registry.is_model_uri(run_id) else None
    if ref is not None and checkpoint is not None:
        raise SpecError("--checkpoint: a registered model version is one checkpoint; drop it")
    folder = checkpoint_folder(checkpoint) if checkpoint is not None else None
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
    from scheduler.cli import display
    from worker.sample import sample_run  # torch: only this command needs it

    done = sample_run(
        client, run_id, folder, prompt, chosen.length, chosen.temperature, chosen.top_k, chosen.seed
    )
    display.err_console.print(f"checkpoint {done.folder} (step {done.step})", style="dim")
    typer.echo(done.text)


def checkpoint_folder(choice: str) -> str:
    """The checkpoint folder `--checkpoint` names: best, final, or a step as 500 or
    step-00000500; anything else is a one-line SpecError."""
    from shared.errors import SpecError

    text = choice.strip().lower()
    if text in (names.BEST_CHECKPOINT, names.FINAL_CHECKPOINT):
        return text
    number = text.removeprefix("step-")
    if number.isdigit():
        return names.checkpoint_dir_name(int(number))
    raise SpecError(f"--checkpoint: expected best, final or a step number; got {choice!r}")
