"""Errors caused by user input.

Every mistake a user can make (a bad config key, a missing checkpoint, wrong shapes) raises a
subclass of :class:`KdzooError` whose message is one line naming the problem. ``tools/*.py`` print
that line and exit non-zero instead of a traceback; anything else is a bug and keeps its traceback.
"""


class KdzooError(Exception):
    """Base class of errors caused by user input, not by a bug in kdzoo."""


class ConfigError(KdzooError):
    """A config file or override is invalid (unknown key, wrong type, missing ``_BASE_``)."""


class RegistryError(KdzooError, KeyError):
    """A name was asked of a registry that does not hold it."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(KdzooError):
    """A checkpoint or weight file is missing, unreadable or does not fit the model."""


class DataError(KdzooError):
    """A dataset is missing or malformed."""
