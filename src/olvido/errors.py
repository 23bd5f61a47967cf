"""The one exception type for bad user input."""


class OlvidoError(Exception):
    """A problem with the user's input: reported as one line (``<input>: <what was expected>``) with a
    non-zero exit, never a traceback."""
