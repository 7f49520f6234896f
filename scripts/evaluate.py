"""Print a run's checkpoint metrics on validation and test as JSON.

python scripts/evaluate.py outputs/imdb/lstm-1x128/2026-11-21_10-00-00 [--checkpoint last.pt] [--data-root DIR]
"""

import sys

from seqmodels.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
