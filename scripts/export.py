"""Export a run's model to ONNX, with its vocabulary and labels as JSON beside it.

python scripts/export.py outputs/imdb/lstm-1x128/2026-11-21_10-00-00 --format onnx --output exports/imdb.onnx
"""

import sys

from seqmodels.inference.export import main

if __name__ == "__main__":
    sys.exit(main())
