"""Load a run's best checkpoint and print its answer to a text as one JSON object.

python scripts/predict.py outputs/imdb/lstm-1x128/2026-11-21_10-00-00 "a wonderful, moving film"
python scripts/predict.py outputs/ptb/lstm-2x200/2026-11-22_09-00-00 "the meaning of life is" \\
    --temperature 0.8 --top-k 5 --seed 1
"""

import sys

from seqmodels.predict import main

if __name__ == "__main__":
    sys.exit(main())
