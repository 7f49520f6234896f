"""Errors a user can fix. The CLI prints them as one line, without a traceback."""


class SeqmodelsError(Exception):
    """Base class: the message names the problem and the fix."""


class ConfigError(SeqmodelsError):
    """An impossible or unknown configuration value."""


class DataError(SeqmodelsError):
    """A dataset that is missing, unreadable or corrupt."""


class CheckpointError(SeqmodelsError):
    """A run directory or checkpoint that cannot be used."""


class TrainingError(SeqmodelsError):
    """Training cannot go on (e.g. the loss became NaN); the last good checkpoint is kept."""
