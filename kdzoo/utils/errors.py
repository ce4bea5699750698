"""Errors caused by user input.

Every mistake a user can make (a bad config key, a missing checkpoint, wrong shapes) raises a
subclass of :class:`KdzooError` whose message is one line naming the problem. ``tools/*.py`` print
that line and exit non-zero instead of a traceback; anything else is a bug and keeps its traceback.
"""

import difflib
from collections.abc import Iterable


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


def close_names(name: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The ``candidates`` closest to ``name``, best first: difflib's similarity ratio of at least
    ``cutoff``, ignoring case (``Resnet50`` is close to ``ResNet50``); ``n`` of them, or one or two
    more where names differ only in case (``resnet50`` and ``ResNet50`` come together)."""
    by_lower: dict[str, list[str]] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), []).append(candidate)
    close: list[str] = []
    for match in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=cutoff):
        if len(close) >= n:
            break
        close += sorted(by_lower[match])
    return close


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """``"; did you mean a, b?"`` naming the :func:`close_names` of ``name``, or ``""`` if none is
    close: the end of an error message about an unknown name."""
    close = close_names(name, candidates, n, cutoff)
    return f"; did you mean {', '.join(close)}?" if close else ""
