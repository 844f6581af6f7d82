"""One error type for everything a user can fix: the CLI prints its message on one line."""


class TinydriftError(Exception):
    """A problem with the user's input or environment, with what to do about it.

    The message names the file or thing at fault and the remedy; the CLI prints it
    without a traceback and exits non-zero.
    """
