"""The rows and the results table of scripts/gpu_check.sh.

Standard library only, so that any python3 writes the table, also when setting up the environment with
torch failed. Each stage of gpu_check.sh adds rows to OUT_DIR/rows.jsonl (`add`), reading what its run
left behind: a run's metrics.json and peak-memory JSON (scripts/train_peak_memory.py), a benchmark's
--json, pytest's log; `table` renders them as OUT_DIR/results.md, one table for every stage.

    python3 scripts/gpu_check_report.py add ROWS --stage "2 train" --run "imdb bf16" --status ok \\
        --seconds 41 --log logs/train-imdb-bf16.log --metrics RUN/metrics.json --peak peak.json
    python3 scripts/gpu_check_report.py table ROWS results.md --env env.json --mode gpu --seconds 470
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

COLUMNS = ["stage", "run", "status", "train loss", "metric", "tokens/s", "peak GPU memory", "seconds", "notes", "log"]
PYTEST_SUMMARY = re.compile(r"\b\d+ (passed|failed|skipped|errors?|deselected)\b")


def read_json(path: str | None) -> dict[str, Any] | None:
    if not path or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


def gib(size: int | None) -> str:
    return "—" if size is None else f"{size / 2**30:.2f} GiB"


def metrics_of(scores: dict[str, float] | None, monitor: str) -> str:
    """`accuracy 0.8123`: the monitored metric of an evaluation."""
    if not scores or monitor not in scores:
        return ""
    return f"{monitor} {number(scores[monitor])}"


def from_run(row: dict[str, Any], metrics: dict[str, Any] | None, peak: dict[str, Any] | None) -> None:
    """A training run: its last epoch's training loss, the best checkpoint's val and test metric (or the
    last validation, for a run stopped early), tokens/s and peak memory."""
    if peak is not None:
        row["peak GPU memory"] = gib(peak.get("max_memory_allocated"))
        if peak.get("max_memory_reserved") is not None:
            row["notes"].append(f"reserved {gib(peak['max_memory_reserved'])}")
    if metrics is None:
        row["notes"].append("no metrics.json")
        return
    history = metrics.get("history") or []
    monitor = str(metrics.get("monitor", "/")).split("/", 1)[-1]
    if history:
        row["train loss"] = number(history[-1].get("train_loss"))
        row["tokens/s"] = number(metrics.get("train_tokens_per_s"), 0)
    final = [f"{split} {metrics_of(metrics.get(split), monitor)}" for split in ("val", "test") if metrics.get(split)]
    if not final and history:
        final = [f"val {monitor} {number(history[-1].get(f'val_{monitor}'))} (last epoch)"]
    row["metric"] = ", ".join(final)
    if metrics.get("status") not in (None, "completed"):
        row["notes"].append(f"run {metrics['status']}: {metrics.get('error', '')}".rstrip(": "))
    if metrics.get("device"):
        row["notes"].append(f"on {metrics['device']}")


def from_long_run(row: dict[str, Any], metrics: dict[str, Any] | None, peak: dict[str, Any] | None) -> None:
    """A run given the minutes left: validation perplexity after every epoch it finished."""
    from_run(row, metrics, peak)
    if metrics is None:
        return
    history = metrics.get("history") or []
    per_epoch = ", ".join(number(h.get("val_perplexity"), 2) for h in history)
    epochs = metrics.get("hparams", {}).get("max_epochs", "?")
    row["metric"] = f"val perplexity per epoch: {per_epoch or 'no epoch finished'}"
    if metrics.get("test"):
        row["metric"] += f"; test {number(metrics['test'].get('perplexity'), 2)}"
    seconds = [h.get("seconds") for h in history if h.get("seconds")]
    row["notes"].insert(0, f"{len(history)} of {epochs} epochs" + (f", {seconds[-1]:.0f} s each" if seconds else ""))


def from_benchmark(row: dict[str, Any], results: dict[str, Any] | None) -> None:
    """scripts/benchmark_throughput.py --json: seqmodels' tokens/s, and the baselines beside it."""
    if results is None:
        row["notes"].append("no benchmark JSON")
        return
    variants = results.get("variants") or []
    if not variants:
        return
    mine = variants[0]
    row["tokens/s"] = number(mine.get("tokens_per_s"), 0)
    row["peak GPU memory"] = gib(results.get("peak_cuda_memory_bytes"))
    row["metric"] = f"{number(mine.get('ms_per_batch'), 2)} ms/batch"
    for other in variants[1:]:
        name = str(other.get("name", "")).split(",")[0].replace("`", "")
        row["notes"].append(f"{name}: {number(other.get('tokens_per_s'), 0)} tokens/s")
    if mine.get("vs_plain") is not None:
        row["notes"].append(f"seqmodels vs plain loop {mine['vs_plain']:.2f}x")


def from_pytest(row: dict[str, Any], log: str | None) -> None:
    """The summary line of a pytest log and the tests that failed."""
    text = Path(log).read_text(errors="replace") if log and Path(log).is_file() else ""
    lines = text.splitlines()
    summary = next((line.strip("= ") for line in reversed(lines) if PYTEST_SUMMARY.search(line)), "")
    row["metric"] = summary or "no pytest summary"
    failed = [line.split()[1] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    if failed:
        row["notes"].append("failed: " + ", ".join(name.split("::")[-1] for name in failed[:12]))
        if len(failed) > 12:
            row["notes"].append(f"and {len(failed) - 12} more")


def add(args: argparse.Namespace) -> None:
    row: dict[str, Any] = {column: "" for column in COLUMNS}
    row.update(stage=args.stage, run=args.run, status=args.status, seconds=str(args.seconds), log=args.log or "")
    row["notes"] = list(args.note or [])
    if args.kind == "run":
        from_run(row, read_json(args.metrics), read_json(args.peak))
    elif args.kind == "long_run":
        from_long_run(row, read_json(args.metrics), read_json(args.peak))
    elif args.kind == "benchmark":
        from_benchmark(row, read_json(args.json))
    elif args.kind == "pytest":
        from_pytest(row, args.pytest_log)
    row["notes"] = "; ".join(str(note) for note in row["notes"] if note)
    with open(args.rows, "a", encoding="utf-8") as rows:
        rows.write(json.dumps(row) + "\n")


def cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ") or " "


def environment_lines(env: dict[str, Any] | None, mode: str) -> list[str]:
    if env is None:
        return ["**torch could not be imported: see logs/setup.log.**"]
    lines = [
        f"- python {env.get('python')}, torch {env.get('torch')}, CUDA {env.get('cuda') or 'none'}, "
        f"cuDNN {env.get('cudnn') or 'none'}; environment: {env.get('venv')}",
        f"- device: {env.get('gpu') or 'no GPU'}"
        + (f" (compute capability {env['capability']})" if env.get("gpu") else ""),
    ]
    if mode == "gpu" and not env.get("cuda_available"):
        why = "a CPU-only build" if not env.get("cuda") else "a CUDA build that sees no GPU"
        lines.insert(0, f"**NO CUDA: torch here is {why}; every GPU stage below is void.**")
    return lines


def table(args: argparse.Namespace) -> None:
    rows = []
    if Path(args.rows).is_file():
        rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines() if line.strip()]
    title = "GPU check" if args.mode == "gpu" else "GPU check, dry mode (the CPU stands in for the GPU, tiny limits)"
    lines = [f"# {title}", ""]
    lines += environment_lines(read_json(args.env), args.mode)
    lines += [f"- {args.seconds} s in all; {args.when}" if args.when else f"- {args.seconds} s in all", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell(row.get(column, "")) for column in COLUMNS) + " |" for row in rows]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    adding = commands.add_parser("add", help="append one row")
    adding.add_argument("rows")
    adding.add_argument("--kind", choices=["plain", "run", "long_run", "benchmark", "pytest"], default="plain")
    adding.add_argument("--stage", required=True)
    adding.add_argument("--run", required=True)
    adding.add_argument("--status", required=True)
    adding.add_argument("--seconds", default="")
    adding.add_argument("--log")
    adding.add_argument("--metrics")
    adding.add_argument("--peak")
    adding.add_argument("--json")
    adding.add_argument("--pytest-log")
    adding.add_argument("--note", action="append")
    rendering = commands.add_parser("table", help="write the Markdown table")
    rendering.add_argument("rows")
    rendering.add_argument("out")
    rendering.add_argument("--env")
    rendering.add_argument("--mode", choices=["gpu", "dry"], default="gpu")
    rendering.add_argument("--seconds", default="?")
    rendering.add_argument("--when", default="")
    args = parser.parse_args(argv)
    add(args) if args.command == "add" else table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
