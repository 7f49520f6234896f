"""Translate a sentence with a run's best checkpoint and save its attention map as a PNG.

    python scripts/plot_attention.py outputs/multi30k/MODEL/DATE_TIME \\
        "Ein Mann fährt mit dem Fahrrad eine Straße entlang." docs/translation_attention.png --beam-size 5

Prints the translation; the image has the source pieces across and the generated pieces down.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqmodels.errors import SeqmodelsError
from seqmodels.inference.loading import load_run
from seqmodels.tasks.attention_map import attention_figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a translation run directory or checkpoint file")
    parser.add_argument("text", help="the sentence to translate")
    parser.add_argument("output", type=Path, help="the PNG to write")
    parser.add_argument("--beam-size", type=int, default=None, help="default: the run's decode.beam_size")
    args = parser.parse_args(argv)
    try:
        run = load_run(args.run)
        if run.cfg.task.kind != "translation":
            raise SeqmodelsError(f"{args.run} is a {run.cfg.task.kind} run; attention maps are drawn for translation")
        result = run.predict(args.text, beam_size=args.beam_size, attention=True)
    except SeqmodelsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    attention = result["attention"]
    figure = attention_figure(
        attention["source"], attention["translation"], attention["weights"], title=result["translation"]
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output)
    print(result["translation"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
