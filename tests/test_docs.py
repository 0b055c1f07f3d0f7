"""The docs a newcomer reads cannot drift from the code: links, commands, spec, test names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
import yaml

from scheduler.cli import app
from shared.spec import TrainSpec

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "deploy" / "README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_in_the_docs_points_to_a_file_inside_the_repository(
    doc: Path,
) -> None:
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        resolved = (doc.parent / target).resolve()
        assert resolved.is_relative_to(REPO), f"{doc.name}: {target} points outside the repo"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"


def test_every_seqq_command_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert len(commands) >= 10
    for name in commands:
        assert f"seqq {name}" in readme, f"`seqq {name}` is not in README.md"


def test_the_readme_spec_file_is_valid_and_holds_exactly_the_spec_defaults() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in _code_blocks(readme, "yaml") if b.startswith("model:")]
    assert len(blocks) == 1, "expected one full spec file in README.md"
    written = TrainSpec.model_validate(yaml.safe_load(blocks[0]))
    assert written == TrainSpec()


def test_every_test_named_in_the_reliability_table_exists() -> None:
    text = (REPO / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", text)
    assert len(named) >= 10
    for module, test in named:
        matches = list((REPO / "tests").rglob(module))
        assert matches, f"{module} not found under tests/"
        assert any(f"def {test}(" in m.read_text(encoding="utf-8") for m in matches), (
            f"{module}::{test} does not exist"
        )


def test_every_measured_table_in_the_docs_is_the_one_its_benchmark_json_draws() -> None:
    from tests.bench.render import drawn_blocks

    performance = drawn_blocks((REPO / "docs" / "PERFORMANCE.md").read_text(encoding="utf-8"))
    assert performance, "docs/PERFORMANCE.md has no table drawn from a benchmark's JSON"
    for doc in DOCS:
        for path, written, drawn in drawn_blocks(doc.read_text(encoding="utf-8")):
            where = doc.relative_to(REPO)
            assert written == drawn, f"{where}: {path}: redraw with tests/bench/render.py --update"


def test_the_readme_sweep_file_is_a_valid_sweep_file() -> None:
    from shared.space import parse_sweep

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in _code_blocks(readme, "yaml") if b.startswith("# sweep.yaml")]
    assert len(blocks) == 1, "expected one sweep file in README.md"
    sweep = parse_sweep(yaml.safe_load(blocks[0]))
    assert sweep.sweep.trials == 32 and "optim.lr" in sweep.space


def test_the_readme_tune_file_is_a_valid_tuned_comparison_for_every_cell() -> None:
    from scheduler.compare_tune import plan_tune

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in _code_blocks(readme, "yaml") if b.startswith("# space.yaml")]
    assert len(blocks) == 1, "expected one --tune file in README.md"
    plan = plan_tune(yaml.safe_load(blocks[0]), {}, ["lstm", "rnn", "gru"], "1h", 3)
    assert plan.trials == 12 and plan.trial_budget_s == 300 and len(plan.seeds) == 3
