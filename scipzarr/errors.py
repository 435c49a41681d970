"""The one exception type the command line turns into a one-line error."""


class ScipzarrError(Exception):
    """A problem with the user's input, config or environment.

    The message is one line that says what is wrong, where, and what to do;
    the CLI prints it without a traceback and exits non-zero.
    """
