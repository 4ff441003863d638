"""Exceptions the CLI turns into one clear line."""


class EgoworldError(Exception):
    """A user-facing error: the message names what is wrong and what was expected."""
