"""Markdown tables of benchmark results: the one place a figure in the docs is drawn from.

    .venv/bin/python tests/bench/render.py docs/bench/train_overhead.json [more.json ...]
    .venv/bin/python tests/bench/render.py --update docs/PERFORMANCE.md README.md

Each benchmark's `--json` object names itself (`bench`); its table is drawn here from that object
alone, whether the benchmark just ran (`--markdown`) or the result was saved
(`--markdown-from FILE`, or this script), so a table in docs/ cannot drift from its JSON.
`--update DOC [DOC ...]` redraws every block of each DOC fenced by `<!-- bench: PATH -->` and
`<!-- /bench -->` from the JSON at PATH (relative to the repository); tests/test_docs.py fails
when a block differs from what its JSON draws.
Imports neither torch nor seqq's worker: rendering a saved result measures nothing.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

CELL_NAMES = {"lstm": "LSTM", "rnn": "simple RNN", "gru": "GRU"}


def load(path: Path) -> dict[str, Any]:
    """A saved result, or a one-line exit naming the file."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"{path}: not found") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(
            f"{path}: not a benchmark's JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    if not isinstance(result, dict) or result.get("bench") not in RENDERERS:
        raise SystemExit(
            f"{path}: no known 'bench' name (one of {', '.join(sorted(RENDERERS))}); "
            "was it written by a benchmark's --json?"
        )
    return result


def table(header: list[str], rows: list[list[str]]) -> str:
    # The blank line first: Markdown starts a table only after one.
    lines = ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def ratio(stats: dict[str, float], bold: bool = False) -> str:
    """A paired median with its spread: `0.982 [0.84-1.25]` (min-max over rounds)."""
    median = f"**{stats['median']:.3f}**" if bold else f"{stats['median']:.3f}"
    return f"{median} [{stats['min']:.2f}-{stats['max']:.2f}]"


def provenance(result: dict[str, Any]) -> str:
    """Which text, which machine: the line under every table."""
    parts = []
    corpus = result.get("corpus")
    if corpus:
        parts.append(
            f"corpus {corpus['name']} (`{corpus['dataset']}`, {corpus['chars']:,} characters, "
            f"sha256 `{corpus['sha256'][:12]}`)"
        )
    host = result.get("host")
    if host:
        device = result.get("device_name")
        on = f"{device}, " if device and device != "cpu" else ""
        parts.append(
            f"{on}{host['cpu']}, {host['usable_cores']} cores, torch {host['torch']}, "
            f"Python {host['python']}"
        )
    return ("Measured on: " + "; ".join(parts) + ".\n") if parts else ""


def render_train_overhead(r: dict[str, Any]) -> str:
    c = r["config"]
    quick = " QUICK run (a smaller model): not a figure." if c.get("quick") else ""
    out = [
        f"seqq's training loop against a bare PyTorch loop in the same precision, on "
        f"{r['device']}: {c['layers']}x{c['hidden']} cells, embedding {c['embedding']}, batch "
        f"{c['batch']} x {c['seq']}, {c['rounds']} rounds of {c['steps']}-step segments. seqq / "
        f"bare is the median of the per-round ratios [min-max], one checkpoint per "
        f"500 steps charged to seqq.{quick}\n",
    ]
    rows = []
    for cell, name in CELL_NAMES.items():
        x = r["cells"][cell]
        for kind, label in (
            ("fp32", "fp32"),
            ("default", f"default ({x['default']['precision']})"),
        ):
            v = x[kind]
            rows.append(
                [
                    name,
                    label,
                    f"{v['bare_chars_per_s']:,}",
                    f"{v['seqq_chars_per_s']:,}",
                    ratio(v["ratio"], bold=True),
                    f"{v['ratio']['q1']:.3f}-{v['ratio']['q3']:.3f}",
                ]
            )
    header = ["cell", "precision", "bare chars/s", "seqq chars/s", "seqq / bare", "IQR"]
    out.append(table(header, rows))
    gains = ", ".join(
        f"{name} {ratio(r['cells'][cell]['hardware_bf16_over_fp32'])}"
        for cell, name in CELL_NAMES.items()
    )
    totals = ", ".join(
        f"{name} {ratio(r['cells'][cell]['default_vs_bare_fp32'])}"
        for cell, name in CELL_NAMES.items()
    )
    out.append(
        f"\nNot seqq's doing: bf16 autocast against fp32 in the bare loop alone (this hardware's "
        f"gain; it varies by host): {gains}. seqq's default against a bare fp32 loop (seqq's "
        f"overhead and the hardware's gain together): {totals}.\n"
    )
    v = r["lstm_val_loss"]
    out.append(
        f"\nLSTM validation loss after {c['steps_trained_lstm']} steps each, same windows: seqq "
        f"default {v['seqq_default']:.4f}, seqq fp32 {v['seqq_fp32']:.4f}, bare fp32 "
        f"{v['bare_fp32']:.4f}, bare bf16 {v['bare_bf16']:.4f}. Other processes used "
        f"{c['other_processes_cores']:.2f} cores meanwhile.\n"
    )
    met = "met" if r["targets"]["met"] else "NOT met"
    out.append(f"\nTarget: seqq / bare >= {r['targets']['ratio_min']} in every row: {met}.\n")
    return "".join(out)


# A result saved before seeds existed names three figures otherwise.
_OLD_QUALITY_NAMES = {
    "best_val_step": "best_step",
    "test_loss_at_best": "test_loss_best",
    "test_loss_final": "test_loss",
}
# The text measures the quality table shows: (sample metric, held-out metric, heading, digits).
_TEXT_COLUMNS = [
    ("sample_word_share", "heldout_word_share", "words found in training text", 2),
    ("sample_ref_bpc", "heldout_ref_bpc", "judge bits/char", 2),
    ("sample_copy_span", "heldout_copy_span", "longest copied span (chars)", 0),
    ("sample_repetition", "heldout_repetition", "repeated word 3-grams", 3),
]


def quality_models(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each model's figures as spreads (`summary`); a result saved before seeds existed (one
    run per model, its figures as plain numbers) reads as one seed, so it still draws."""
    out = {}
    for model, m in r["models"].items():
        if "summary" in m:
            out[model] = m["summary"]
            continue
        one = {_OLD_QUALITY_NAMES.get(k, k): v for k, v in m.items() if k != "curve"}
        out[model] = {
            k: {"mean": v, "std": None, "min": v, "max": v, "n": 1} for k, v in one.items()
        }
    return out


def _mean(stats: dict[str, Any] | None) -> str:
    return "-" if stats is None else f"{stats['mean']:,.0f}"


def _alone(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if stats is None else {**stats, "n": 1}


def render_quality(r: dict[str, Any]) -> str:
    quick = " QUICK run: not a figure." if r.get("quick") else ""
    models = quality_models(r)
    last10 = (
        "; last 10% is validation and test together (the text's held-out end, nanoGPT's "
        "validation split)"
        if any(m.get("last10_loss_best") for m in models.values())
        else ""
    )
    seeds = r.get("seeds") or []
    over = (
        f", the same {len(seeds)} seeds for every model ({', '.join(map(str, seeds))}), "
        "each figure the mean ± sample std over them"
        if len(seeds) > 1
        else ", one seed"
    )
    out = [
        f"The default spec of each model for {r['budget_s']:.0f} s of training per run "
        f"(`seqq compare --local`){over}; losses in nats/char on the held-out splits. Test at "
        f"best val is the test loss of the checkpoint with the best validation loss; test final "
        f"is the final weights'{last10}.{quick}\n"
    ]
    rows = [
        [
            CELL_NAMES.get(model, model),
            spread(m["steps"], 0),
            spread(m["chars_per_s"], 0),
            f"**{spread(m['best_val_loss'], 3)}** (step {_mean(m['best_step'])})",
            f"**{spread(m['test_loss_best'], 3)}**",
            spread(m["final_val_loss"], 3),
            spread(m["test_loss"], 3),
        ]
        for model, m in models.items()
    ]
    header = [
        "model",
        "steps",
        "chars/s",
        "best val",
        "test at best val",
        "final val",
        "test final",
    ]
    if any(m.get("last10_loss_best") for m in models.values()):
        header.append("last 10% at best val")
        for row, m in zip(rows, models.values(), strict=True):
            row.append(spread(m.get("last10_loss_best"), 3))
    out.append(table(header, rows))
    texts = {model: m.get("text_quality") or {} for model, m in models.items()}
    if any(texts.values()):
        length = r.get("sample_length")
        out.append(
            "\nThe text each model generated at its last sample step (mean over prompts, then "
            "over seeds), beside the same measures on held-out text"
            + (f" ({length} characters)" if length else "")
            + ":\n"
        )
        rows = [
            [CELL_NAMES.get(model, model)]
            + [spread(q.get(metric), digits) for metric, _, _, digits in _TEXT_COLUMNS]
            for model, q in texts.items()
        ]
        held = next(q for q in texts.values() if q)
        # The held-out text is the same for every run: its mean alone.
        rows.append(
            ["held-out text"] + [spread(_alone(held.get(ref)), d) for _, ref, _, d in _TEXT_COLUMNS]
        )
        out.append(table(["model"] + [h for _, _, h, _ in _TEXT_COLUMNS], rows))
    return "".join(out)


def render_data_pipeline(r: dict[str, Any]) -> str:
    quick = " QUICK run: not a figure." if r.get("quick") else ""
    out = [
        f"Encoding a {r['corpus_mb']:.0f} MB corpus built from the reference text's lines, "
        f"each approach in {r['processes_per_approach']} fresh processes; MB/s over the median "
        f"process, peak RSS over the process's size after imports.{quick}\n"
    ]
    rows = [
        [
            name,
            f"{row['mb_per_s']:,.1f}",
            f"{row['peak_rss_over_corpus']:.2f}x",
            str(row["vocab_size"]),
        ]
        for name, row in (
            ("seqq `encode_bytes`, ASCII", r["encode_bytes"]),
            ("seqq `load_corpus`, cold cache", r["load_corpus_cold"]),
            ("seqq `encode_bytes`, Unicode", r["unicode"]),
            ("a dict per character", r["dict_per_char"]),
        )
    ]
    hot = r["one_hot"]
    rows.append(
        [
            f"whole-corpus float32 one-hot (extrapolated from {hot['extrapolated_from_slice_mb']} MB)",
            f"{hot['mb_per_s_extrapolated']:,.1f}",
            f"{hot['peak_rss_over_corpus_extrapolated']:.1f}x",
            str(hot["vocab_size"]),
        ]
    )
    out.append(table(["approach", "MB/s", "peak RSS / corpus", "vocab"], rows))
    out.append(
        f"\nseqq `load_corpus`, warm cache: {r['load_corpus_cold']['warm_load_s'] * 1000:.1f} ms. "
        f"Targets (>= {r['targets']['mb_per_s_min']:.0f} MB/s, <= "
        f"{r['targets']['peak_rss_over_corpus_max']:.0f}x): "
        f"{'met' if r['targets']['met'] else 'NOT met'}.\n"
    )
    return "".join(out)


def render_scale(r: dict[str, Any]) -> str:
    quick = " QUICK run: not a figure." if r.get("quick") else ""
    k = r["jobs"]
    out = [
        f"{k} jobs of {r['steps_per_job']} steps, {r['rounds']} round(s); workers started as a "
        f"user starts them: {', '.join(f'`{c}`' for c in r['worker_commands'].values())}.{quick}\n"
    ]
    threads = r.get("torch_threads_per_job") or {}
    rows = [
        ["one job alone, submit -> FINISHED", f"{r['single_job_s']:.2f} s"],
        [
            f"{k} jobs: 1 worker / 2 workers / `seqq worker --cpus 2`",
            f"{r['makespan_1_worker_s']:.1f} / {r['makespan_2_workers_s']:.1f} / "
            f"{r['makespan_cpus_2_s']:.1f} s",
        ],
        ["efficiency, 2 workers (k x single / 2 / makespan)", f"**{r['efficiency_2_workers']:.2f}**"],
        ["efficiency, `seqq worker --cpus 2`", f"**{r['efficiency_cpus_2']:.2f}**"],
        ["torch threads per job (the runs' tag)", ", ".join(f"{n}: {t}" for n, t in threads.items())],
        ["two bare loops at once against one alone (the machine's ceiling)", f"{r['bare_efficiency_2_processes']:.2f}"],
        ["submit -> first step, `seqq submit` (median of 3)", f"{r['submit_to_first_step_s_median']:.2f} s"],
        ["no-op dispatch round trips", f"{r['dispatch_tasks_per_s']:.0f} tasks/s"],
    ]  # fmt: skip
    out.append(table(["measure", "value"], rows))
    return "".join(out)


RECALL_THRESHOLD = 0.5  # a lag counts as remembered when mean recall reaches this


def memory_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The probe's rows with each model under `models` and its figures as spreads. A result
    saved before seeds existed (one run per model, its figures beside the lag) reads as one
    seed, so the docs' older result still draws."""
    rows = []
    for row in r["rows"]:
        if "models" in row:
            rows.append(row)
            continue
        levels = ("lag", "dataset", "chance", "perfect")
        models = {
            model: {"runs": [{"seed": None, **run}]}
            | {k: {"mean": v, "std": None, "min": v, "max": v, "n": 1} for k, v in run.items()}
            for model, run in row.items()
            if model not in levels
        }
        rows.append({k: row[k] for k in levels} | {"models": models})
    return rows


def memory_reach(rows: list[dict[str, Any]], model: str) -> int | None:
    """The largest lag at which the model's mean recall is at least RECALL_THRESHOLD."""
    reached = [
        row["lag"]
        for row in rows
        if (recall := row["models"][model]["recall"]) and recall["mean"] >= RECALL_THRESHOLD
    ]
    return max(reached, default=None)


def spread(stats: dict[str, Any] | None, digits: int, extremes: bool = False) -> str:
    """`mean ± std [min, max]` over seeds; a lone run's value alone."""
    if stats is None:
        return "-"
    text = f"{stats['mean']:,.{digits}f}"
    if stats["n"] > 1 and stats["std"] is not None:
        text += f" ± {stats['std']:,.{digits}f}"
        if extremes:
            text += f" [{stats['min']:,.{digits}f}, {stats['max']:,.{digits}f}]"
    return text


def render_memory_probe(r: dict[str, Any]) -> str:
    quick = " QUICK run: not a figure." if r.get("quick") else ""
    rows = memory_rows(r)
    models = list(rows[0]["models"])
    seeds: list[int] = r.get("seeds") or []
    several = len(seeds) > 1
    over = (
        f"the same {len(seeds)} seeds for every model and lag ({', '.join(map(str, seeds))})"
        if several
        else "one seed per model and lag"
    )
    shown = ", as mean ± sample std [min, max] over the seeds" if several else ""
    out = [
        f"`synthetic:copy?lag=L&alphabet=8`, {r['budget']} of training per run, {over}; "
        f"recall = share of the chance -> perfect-recall gap closed{shown}.{quick}\n"
    ]
    names = [CELL_NAMES.get(m, m) for m in models]
    header = ["lag", "chance", "perfect recall"]
    header += [h for name in names for h in (f"{name} recall", f"{name} best val")]
    header.append(" / ".join(names) + " steps")
    body = []
    for row in rows:
        cells = [str(row["lag"]), f"{row['chance']:.3f}", f"{row['perfect']:.3f}"]
        for m in models:
            x = row["models"][m]
            cells += [spread(x["recall"], 2, extremes=True), spread(x["best_val_loss"], 3)]
        steps = [row["models"][m]["steps"] for m in models]
        cells.append(" / ".join(f"{s['mean']:,.0f}" if s else "-" for s in steps))
        body.append(cells)
    out.append(table(header, body))
    reach = ", ".join(
        f"{name} {lag if lag is not None else 'none of these lags'}"
        for name, lag in zip(names, (memory_reach(rows, m) for m in models), strict=True)
    )
    out.append(f"\nLargest lag with mean recall >= {RECALL_THRESHOLD}: {reach}.\n")
    return "".join(out)


def render_client_latency(r: dict[str, Any]) -> str:
    out = [
        f"Median of {r['rounds']} fresh `seqq` processes (spawn to exit), interleaved with "
        f"`seqq --help` ({r['help_median_s']:.2f} s in the same run).\n"
    ]
    rows = []
    for row in r["rows"]:
        goal = ""
        if row["goal_s"] is not None:
            goal = f"<= {row['goal_s']} " + ("met" if row["meets_goal"] else "**missed**")
        rows.append(
            [
                f"`{row['command']}`",
                row["store"],
                row["client"],
                f"{row['median_s']:.2f} [{row['min_s']:.2f}-{row['max_s']:.2f}]",
                f"{row['x_help']:.1f}",
                goal,
            ]
        )
    header = ["command", "store", "client", "median s [min-max]", "x `--help`", "goal (s)"]
    out.append(table(header, rows))
    return "".join(out)


def render_sweep(r: dict[str, Any]) -> str:
    rows = []
    for row in r.get("pruning", []):
        none, asha = row["none"], row["asha"]
        rows.append(
            [
                str(row["seed"]),
                f"{none['best_val_loss']:.3f}",
                f"{asha['best_val_loss']:.3f}",
                f"{row['loss_gap']:+.3f}",
                f"{none['train_s']:.0f}",
                f"{asha['train_s']:.0f}",
                f"**{row['time_ratio']:.2f}**",
                str(asha["counts"].get("PRUNED", 0)),
            ]
        )
    out = table(
        [
            "sweep seed",
            "best val, no pruning",
            "best val, ASHA",
            "gap (target <= 0.02)",
            "train s, no pruning",
            "train s, ASHA",
            "time ratio (target <= 0.33)",
            "pruned",
        ],
        rows,
    )
    gap = r.get("prune_to_next_trial_s")
    rate = r.get("trials_per_hour")
    sampler = f", {r['rate_sampler']} sampler" if r.get("rate_sampler") else ""
    lines = [
        f"- {r['trials']} trials per sweep, {r['steps']} steps each, an evaluation every "
        f"{r['eval_every']}; space: {'; '.join(s.strip() for s in r['space'])}.",
        "- pruned trial -> its worker's next trial's first step: "
        + (
            f"median **{gap['median']:.2f} s** (min {gap['min']:.2f}, max {gap['max']:.2f}, "
            f"n {gap['n']}; target <= 2 s)"
            if gap
            else "no trial was pruned"
        ),
        *_report_lines(r),
        (
            f"- trials per hour ({r.get('rate_trials', r['trials'])}-trial sweeps{sampler}): "
            f"{rate['1']:.0f} on one one-core worker, {rate['2']:.0f} on two; "
            f"efficiency **{r['efficiency_2_workers']:.2f}** (target >= 0.9)"
            if rate
            else "- trials per hour: not measured in this result"
        ),
        *_measured_lines(r),
    ]
    return out + "\n" + "\n".join(lines) + "\n" + replay_table(r)


def _measured_lines(r: dict[str, Any]) -> list[str]:
    """Which run measured what, when a result was put together from several (`--merge`)."""
    runs = r.get("measured") or []
    if len(runs) < 2:
        return []
    said = [
        f"{m['date']}: {', '.join(m['parts'])}"
        + (f" (seeds {', '.join(map(str, m['seeds']))})" if m.get("seeds") else "")
        for m in runs
    ]
    return [f"- measured in {len(runs)} runs, each figure paired within one: {'; '.join(said)}"]


def replay_table(r: dict[str, Any]) -> str:
    """The pruning decisions alone: each pruner setting over each unpruned sweep's curves, in
    the sweep's order and (when replayed so) over shuffled orders."""
    seeds = [row for row in r.get("pruning", []) if row.get("replay")]
    if not seeds:
        return ""
    shuffled = "shuffled" in next(iter(seeds[0]["replay"].values()))
    rows = []
    for name in seeds[0]["replay"]:
        cells = [name]
        for row in seeds:
            replayed = row["replay"][name]
            cell = f"{replayed['loss_gap']:+.3f} / {replayed['time_ratio']:.2f}"
            if shuffled:
                sh = replayed["shuffled"]
                cell += (
                    f" ({sh['mean_gap']:+.3f} / {sh['mean_time_ratio']:.2f}, {sh['misses']:.0%})"
                )
            cells.append(cell)
        rows.append(cells)
    header = [
        "replayed over the unpruned trials",
        *(f"seed {row['seed']}: gap / time" for row in seeds),
    ]
    orders = next(iter(seeds[0]["replay"].values())).get("shuffled", {}).get("orders")
    also = (
        f"; in brackets the mean over {orders} shuffled orders and the share of orders whose gap "
        "exceeds 0.02"
        if shuffled
        else ""
    )
    return (
        "\nThe pruning decisions alone: each setting decides over the unpruned sweep's own "
        "trials, in its order (first rung x reduction factor; a pruned trial costs its share of "
        f"steps){also}:\n" + table(header, rows)
    )


def _report_lines(r: dict[str, Any]) -> list[str]:
    share, paired = r.get("report_share"), r.get("report_overhead")
    lines = []
    if share:
        lines.append(
            f"- reporting to the study, timed in the trial (`trial_report_s`: report + "
            f"should_prune): median **{share['median']:.3%}** of a trial's training time (max "
            f"{share['max']:.3%}, {share['n']} trials; target < 1%)"
        )
    if not paired:
        return lines
    lines.append(
        f"- {'cross-check, ' if share else ''}a trial's training time over the same spec alone, "
        f"median **{paired['median']:.3f}** (min {paired['min']:.3f}, max {paired['max']:.3f}, "
        f"{paired['n']} rounds; target < 1.01{'; bound by run-to-run noise' if share else ''})"
    )
    return lines


def _value(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def render_tuned_compare(r: dict[str, Any]) -> str:
    quick = " QUICK run: not a figure." if r.get("quick") else ""
    out = [
        f"`seqq compare --local --tune`: each model's sweep ({r['trials']} trials, TPE, ASHA"
        f"{_time_rungs(r.get('asha_first_rung_s'))}"
        f"{', its default spec as trial 0' if r.get('default_as_trial') else ''}) "
        f"had {r['budget_s']:.0f} s of training time ({r['trial_budget_s']:.0f} s a trial); then "
        f"its default and its tuned spec trained {r['trial_budget_s']:.0f} s each over the same "
        f"{r['seeds']} seeds (mean ± std). Losses in nats/char; test is the best checkpoint's "
        f"weights on the test split; last 10% is validation and test together at those weights "
        f"(nanoGPT's validation split); judge bpc is the samples' bits/char under the order-5 "
        f"n-gram judge fitted on the training split.{quick}\n"
    ]
    rows = []
    for model, m in r["models"].items():
        for variant, f in m["variants"].items():
            kept = variant == "tuned" and m.get("default_won")
            rows.append(
                [
                    f"{CELL_NAMES.get(model, model)} {variant}"
                    + (" (= default: its sweep chose it; the same runs)" if kept else ""),
                    spread(f["best_val_loss"], 3),
                    spread(f["test_loss_best"], 3),
                    spread(f.get("last10_loss_best"), 3),
                    spread(f["steps"], 0),
                    spread(f["chars_per_s"], 0),
                    spread(f.get("sample_ref_bpc"), 2),
                ]
            )
    header = ["model", "best val", "test (best weights)", "last 10%", "steps", "chars/s"]
    header.append("judge bpc")
    out.append(table(header, rows))
    fields = list(next(iter(r["models"].values()))["default_values"])
    value_rows = [
        [
            field,
            *(
                f"{_value(m['default_values'][field])} -> "
                + (_value(m["tuned_values"][field]) if m["tuned_values"] else "-")
                for m in r["models"].values()
            ),
        ]
        for field in fields
    ]
    value_rows.append(
        [
            "sweep trials",
            *(
                ", ".join(f"{n} {state.lower()}" for state, n in m["counts"].items() if n)
                for m in r["models"].values()
            ),
        ]
    )
    names = [CELL_NAMES.get(model, model) for model in r["models"]]
    out.append(table(["default -> chosen", *names], value_rows))
    out.append(f"\nSpace: {'; '.join(s.strip() for s in r['space'])}.\n")
    return "".join(out)


def _time_rungs(first_s: float | None) -> str:
    """How ASHA ranked a tuned comparison's trials, where the result says (rungs in seconds)."""
    if first_s is None:
        return ""
    return f" ranking trials at {first_s:g} s and {first_s * 5:g} s of training"


def _values_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{field.split('.')[-1]} {_value(v)}" for field, v in values.items())


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds:g} s"


PRUNERS = {"asha": "ASHA", "median": "median pruning", "none": "no pruning"}
SAMPLERS = {"tpe": "TPE", "random": "random", "grid": "grid"}


def default_trial(trials: list[dict[str, Any]], current: dict[str, Any]) -> dict[str, Any] | None:
    """The sweep trial that trained the default of the day: the base trial (try_base), or, in a
    grid, which has none, the point that draws the default's values."""
    return next(
        (t for t in trials if t.get("base")),
        next((t for t in trials if t.get("values") == current), None),
    )


def render_defaults(r: dict[str, Any]) -> str:
    quick = " QUICK run: not a figure." if r.get("quick") else ""
    model = CELL_NAMES.get(r["model"], r["model"])
    sweep = r.get("sweep")
    label = "chosen" if sweep else "candidate"  # searched, or given with --values
    if sweep:
        searched = "; ".join(f"{k}: {json.dumps(v)}" for k, v in sweep["space"].items())
        # The default is trial 0 only where the space can draw its values (try_base); a grid
        # has no trial 0 but may hold the default as one of its points.
        default_row = default_trial(sweep.get("trial_rows", []), r["candidates"]["default"])
        base = ", the default of the day as trial 0"
        if "trial_rows" in sweep and not (default_row and default_row.get("base")):
            base = ", the default of the day one of its points" if default_row else ""
        counts = ", ".join(
            f"{n} {state.lower()}" for state, n in (sweep["counts"] or {}).items() if n
        )
        origin = (
            f"`seqq sweep --local` over the default {model} spec ({sweep['trials']} trials of "
            f"{_minutes(sweep['trial_budget_s'])}, {SAMPLERS[sweep.get('sampler', 'tpe')]}, "
            f"{PRUNERS[sweep.get('pruner', 'asha')]}{base}; "
            f"{counts}) searched {searched}; its best trial (best validation loss "
            f"{sweep['best_value']:.3f}) "
            + ("was the default." if sweep.get("best_is_base") else "chose the values below.")
        )
    else:
        origin = "The candidate values were given (`--values`), not searched."
    seeds = f"{r['seeds']} seed{'s' if r['seeds'] > 1 else ''}"
    same = r["candidates"]["default"] == r["candidates"]["chosen"]
    trained = "the default" if same else f"the default of the day and the {label} values"
    out = [
        f"{origin} Then {trained} trained at each budget "
        f"(`seqq compare --local`, {seeds}; mean ± std over seeds). End - best is the final "
        f"validation loss minus the best one: above zero, the run ends worse than its best. "
        f"Last 10% is validation and test together (nanoGPT's validation split). "
        f"Losses in nats/char.{quick}\n"
    ]
    names = {name: _values_text(values) for name, values in r["candidates"].items()}
    shown = {"default": "default", "chosen": label}
    rows = []
    for c in r["checks"]:
        f = c["summary"]
        rows.append(
            [
                _minutes(c["budget_s"]) + (f" ({c['source']})" if c.get("source") else ""),
                f"{shown[c['spec']]} ({names[c['spec']]})",
                spread(f["steps"], 0),
                f"{spread(f['best_val_loss'], 3)} (step {spread(f['best_step'], 0)})",
                spread(f["final_val_loss"], 3),
                spread(f["end_gap"], 3),
                spread(f["test_loss_best"], 3),
                spread(f["test_loss"], 3),
                spread(f.get("last10_loss_best"), 3),
            ]
        )
    header = ["budget", "spec", "steps", "best val", "final val", "end - best"]
    header += ["test (best weights)", "test (final weights)", "last 10% (best weights)"]
    out.append(table(header, rows))
    if sweep and sweep.get("trial_rows"):
        out.append("\nEvery trial of the sweep, in the order it ran:\n")
        trial_rows = [
            [
                str(t["number"]) + (" (default)" if t is default_row else ""),
                _values_text(t["values"]),
                t["state"].lower(),
                "" if t.get("steps") is None else f"{t['steps']:,}",
                "" if t.get("best_val_loss") is None else f"{t['best_val_loss']:.3f}",
            ]
            for t in sweep["trial_rows"]
        ]
        out.append(table(["trial", "values", "state", "steps", "best val"], trial_rows))
    return "".join(out)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "defaults": render_defaults,
    "sweep": render_sweep,
    "tuned_compare": render_tuned_compare,
    "train_overhead": render_train_overhead,
    "quality": render_quality,
    "data_pipeline": render_data_pipeline,
    "scale": render_scale,
    "memory_probe": render_memory_probe,
    "client_latency": render_client_latency,
}


def markdown(result: dict[str, Any]) -> str:
    """The result's table and the line saying what it was measured on."""
    body = RENDERERS[result["bench"]](result)
    origin = provenance(result)
    return body + ("\n" + origin if origin else "")


REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"(<!-- bench: (\S+) -->\n)(.*?)(<!-- /bench -->)", re.S)


def drawn_blocks(text: str) -> list[tuple[str, str, str]]:
    """(json path, block as written, block as its JSON draws it) for each fenced block."""
    return [
        (m.group(2), m.group(3), markdown(load(REPO / m.group(2)))) for m in BLOCK.finditer(text)
    ]


def update(doc: Path) -> None:
    """Redraw each fenced block of `doc` from its JSON."""
    text = doc.read_text(encoding="utf-8")
    redrawn = BLOCK.sub(lambda m: m.group(1) + markdown(load(REPO / m.group(2))) + m.group(4), text)
    doc.write_text(redrawn, encoding="utf-8")


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        raise SystemExit(__doc__.strip().split("\n\n")[1].strip())
    if argv[0] == "--update":
        for doc in argv[1:]:
            update(Path(doc))
        return
    sys.stdout.write("\n".join(markdown(load(Path(arg))) for arg in argv))


if __name__ == "__main__":
    main(sys.argv[1:])
