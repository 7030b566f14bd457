"""The one error type users see: the CLI prints its message on one line and exits with code 2."""


class SemtokError(Exception):
    """A user-facing error: bad input, a bad option, a missing or wrong file.

    The message names the file or option and what was expected; it must fit on one line.
    """
