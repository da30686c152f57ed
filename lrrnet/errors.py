"""Errors a user can cause.

Scripts catch :class:`UserError` and print its one-line message with a non-zero exit
instead of a traceback; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input: a file, a folder, a key or a value."""

    exit_code = 2


class ConfigError(UserError):
    """An unknown config key, a value of the wrong type, an unreadable config file."""


class DataError(UserError):
    """A missing folder, an unreadable image, a mask missing or of another size."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not fit the model."""


def summarize(items: list[str], separator: str = "; ", limit: int = 5) -> str:
    """The first ``limit`` items, then "and N more": keeps a long list in a one-line message."""
    shown = separator.join(items[:limit])
    more = len(items) - limit
    return shown + (f"{separator}and {more} more" if more > 0 else "")
