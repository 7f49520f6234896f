"""Compare runs: a Markdown and CSV table and PNG plots (see seqmodels/compare.py).

python scripts/compare.py outputs/multirun/2026-11-22_10-00-00
python scripts/compare.py outputs/optuna/imdb_optuna
python scripts/compare.py outputs/imdb/lstm-1x128/2026-11-21_09-00-00 outputs/imdb/gru-1x128/2026-11-22_11-30-00 \\
    --out reports/lstm_vs_gru
"""

import sys

from seqmodels.compare import main

if __name__ == "__main__":
    sys.exit(main())
