"""Compare runs: a Markdown and CSV table and PNG plots (see seqmodels/compare.py).

python scripts/compare.py outputs/multirun/2026-11-22/10-00-00
python scripts/compare.py outputs/optuna/imdb_optuna
python scripts/compare.py outputs/2026-11-21/09-00-00 outputs/2026-11-22/11-30-00 --out reports/lstm_vs_gru
"""

import sys

from seqmodels.compare import main

if __name__ == "__main__":
    sys.exit(main())
