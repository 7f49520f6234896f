"""Train a recurrent sequence model: `python train.py model=lstm task=imdb` (see README.md)."""

from seqmodels.cli import main

if __name__ == "__main__":
    main()
