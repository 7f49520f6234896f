"""seqmodels: config-driven training of recurrent sequence models.

from seqmodels import load_run
run = load_run("outputs/imdb/lstm-1x128/2026-11-29_10-00-00")
run.predict(["a wonderful film", "dull"])
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_run"]


def __getattr__(name: str) -> Any:
    # imported on first use: `import seqmodels.data...` should not load torch and every task
    if name == "load_run":
        from seqmodels.inference.loading import load_run

        return load_run
    raise AttributeError(f"module 'seqmodels' has no attribute {name!r}")
