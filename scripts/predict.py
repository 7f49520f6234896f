"""Load a run's best checkpoint and print its answer to a text as one JSON object.

python scripts/predict.py outputs/2026-11-21/10-00-00 "a wonderful, moving film"
python scripts/predict.py outputs/2026-11-22/09-00-00 "the meaning of life is" --temperature 0.8 --top-k 5 --seed 1
"""

import sys

from seqmodels.predict import main

if __name__ == "__main__":
    sys.exit(main())
