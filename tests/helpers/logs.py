"""What a run logs, captured as train.py's train.log captures it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def logging_to(handler: logging.Handler) -> Iterator[None]:
    """Inside: the seqmodels logger's INFO records also go to `handler`; after: the logger as it was."""
    logger = logging.getLogger("seqmodels")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
