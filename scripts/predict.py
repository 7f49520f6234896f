"""Load a run's best checkpoint and print its answer to a text as one JSON object.

    python scripts/predict.py outputs/2026-11-21/10-00-00 "a wonderful, moving film"
"""

import sys

from seqmodels.predict import main

if __name__ == "__main__":
    sys.exit(main())
