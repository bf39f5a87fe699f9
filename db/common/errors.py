"""The one error type the CLI turns into a single clear line and a non-zero exit."""


class SurveyError(Exception):
    """A user-facing failure: bad input, a missing package, an unreadable file.

    The message is one line that says what went wrong and, where possible, what to do next.
    """
