"""Accuracy against the number of labels, from a language model, GloVe and scratch (see seqmodels/label_curve.py).

python scripts/label_curve.py --lm runs/imdb_lm --out runs/label_curve --plot docs/label_curve.png trainer.num_threads=1
"""

import sys

from seqmodels.label_curve import main

if __name__ == "__main__":
    sys.exit(main())
