"""Accuracy against the number of labelled examples: the same classifier fine-tuned from a pretrained
language model, from GloVe vectors and from scratch, on seeded, stratified subsets of the training
examples (`data.train_examples`), each scored on the whole test set.

    python scripts/label_curve.py --lm runs/imdb_lm --out runs/label_curve --plot docs/label_curve.png

Every point is one ordinary run of `train.py` (`experiment=imdb_ulmfit` unless `--experiment` says
otherwise) in its own directory under `--out`, so a point can be inspected, predicted with or
compared like any other run; points whose directory already holds test metrics are not run again,
so an interrupted curve continues where it stopped. The validation split is the preset's own and
the same for every point (the subset is drawn from the rest). A subset too small for early stopping
trains on a fixed schedule: at least `--min-steps` optimizer steps (so a few hundred labels see
several epochs), at least `--min-epochs`, without early stopping; the best validation epoch is
tested, as in every run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from seqmodels.atomic import save_json

ROOT = Path(__file__).resolve().parents[2]
ALL = "all"
GLOVE = "${data.root}/glove/glove.6B.50d.txt.gz"


@dataclass(frozen=True)
class Point:
    arm: str  # how the encoder starts: scratch | glove | lm
    labels: int | None  # training examples; None: all
    seed: int

    @property
    def name(self) -> str:
        return f"{self.arm}-{self.labels or ALL}-s{self.seed}"


def arm_overrides(arm: str, language_models: list[str]) -> list[str]:
    if arm == "scratch":
        return []
    if arm == "glove":  # the vectors' width decides the embedding's
        return ["model.embedding_dim=50", f"model.pretrained_vectors={GLOVE}"]
    if not language_models:
        raise SystemExit(
            "error: the lm arm needs --lm RUN_DIR (a language-model run, e.g. experiment=imdb_lm_pretrain)"
        )
    source = language_models[0] if len(language_models) == 1 else "[" + ",".join(language_models) + "]"
    return [f"model.init_from={source}"]


def schedule(labels: int | None, batch_size: int, min_steps: int, min_epochs: int) -> list[str]:
    """A fixed number of epochs where the subset is small (no early stopping), the preset's own otherwise."""
    if labels is None:
        return []
    epochs = max(min_epochs, math.ceil(min_steps / math.ceil(labels / batch_size)))
    return [f"trainer.max_epochs={epochs}", "trainer.early_stopping_patience=null"]


def test_metrics(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    return metrics.get("test") or None


def run_point(point: Point, args: argparse.Namespace, run_dir: Path) -> dict | None:
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        f"experiment={args.experiment}",
        f"seed={point.seed}",
        *([f"data.train_examples={point.labels}"] if point.labels else []),
        *schedule(point.labels, args.batch_size, args.min_steps, args.min_epochs),
        *arm_overrides(point.arm, args.lm),
        *args.overrides,
        f"hydra.run.dir={run_dir}",
    ]
    print(f"[label_curve] {point.name}: {' '.join(command[1:])}", flush=True)
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        print(f"[label_curve] {point.name} failed; its run directory says why: {run_dir}", flush=True)
    return test_metrics(run_dir)


def write_report(rows: list[dict], out: Path, plot: Path | None, metric: str) -> None:
    """rows: one per point that finished. A CSV and a Markdown table of the mean (and spread) per arm and
    label count, and the curve on a log axis."""
    with open(out / "label_curve.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["arm", "labels", "seed", metric, "run_dir"])
        writer.writeheader()
        writer.writerows(rows)
    arms = sorted({row["arm"] for row in rows})
    sizes = sorted({row["labels"] for row in rows})
    table = {
        (arm, n): [row[metric] for row in rows if row["arm"] == arm and row["labels"] == n]
        for arm in arms
        for n in sizes
    }

    def cell(values: list[float]) -> str:
        if not values:
            return "—"
        mean = sum(values) / len(values)
        if len(values) == 1:
            return f"{100 * mean:.2f}"
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        return f"{100 * mean:.2f} ± {100 * spread:.2f} ({len(values)})"

    lines = [f"| labels | {' | '.join(arms)} |", f"| ---: | {' | '.join('---:' for _ in arms)} |"]
    lines += [f"| {n:,} | {' | '.join(cell(table[arm, n]) for arm in arms)} |" for n in sizes]
    (out / "label_curve.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    if plot is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for arm in arms:
        points = [(n, 100 * sum(table[arm, n]) / len(table[arm, n])) for n in sizes if table[arm, n]]
        axis.plot(*zip(*points), marker="o", label=arm)
    axis.set_xscale("log")
    axis.set_xlabel("labelled training examples")
    axis.set_ylabel(f"test {metric} (%)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(plot, dpi=120)
    print(f"[label_curve] plot: {plot}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every run, e.g. trainer.num_threads=1")
    parser.add_argument("--experiment", default="imdb_ulmfit", help="the preset every point trains")
    parser.add_argument(
        "--lm", nargs="*", default=[], help="the language-model run(s) of the lm arm (forward, backward)"
    )
    parser.add_argument("--arms", nargs="+", default=["scratch", "glove", "lm"], choices=["scratch", "glove", "lm"])
    parser.add_argument("--labels", nargs="+", default=["100", "500", "1000", "5000", ALL], help="subset sizes, or all")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--batch-size", type=int, default=64, help="the preset's data.batch_size, to count steps")
    parser.add_argument("--min-steps", type=int, default=40, help="optimizer steps at least, for small subsets")
    parser.add_argument("--min-epochs", type=int, default=3)
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument(
        "--all-count",
        type=int,
        default=22500,
        help="where 'all' stands on the axis: the training examples outside the validation split "
        "(IMDB: 22,500 of 25,000)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/label_curve"))
    parser.add_argument("--plot", type=Path, default=None, help="write the curve as PNG here")
    parser.add_argument("--report-only", action="store_true", help="tabulate the finished points; train nothing")
    args = parser.parse_args(argv)
    try:
        sizes = [None if n == ALL else int(n) for n in args.labels]
    except ValueError:
        parser.error(f"--labels takes counts or {ALL}, got {args.labels}")
    if any(n is not None and n < 2 for n in sizes):
        parser.error("--labels: each subset needs at least 2 examples (one per class at the least)")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for labels in sizes:
        for arm in args.arms:
            for seed in args.seeds:
                point = Point(arm, labels, seed)
                run_dir = (args.out / point.name).resolve()
                metrics = test_metrics(run_dir)
                if metrics is None and not args.report_only:
                    metrics = run_point(point, args, run_dir)
                if metrics and args.metric in metrics:
                    rows.append(
                        {
                            "arm": arm,
                            "labels": labels or args.all_count,
                            "seed": seed,
                            args.metric: metrics[args.metric],
                            "run_dir": str(run_dir),
                        }
                    )
    save_json({"points": rows}, args.out / "label_curve.json")
    if rows:
        write_report(rows, args.out, args.plot, args.metric)
    return 0
