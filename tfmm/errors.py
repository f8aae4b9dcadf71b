"""The base class of every error that is the user's to fix (config, data, paths, presets).

Command-line entry points catch `UserError` and print its message as one line with a non-zero
exit, instead of a traceback.
"""


class UserError(Exception):
    """A mistake in what the user gave tfmm: its message says what was expected and received."""
