"""The base class of every error that is the user's to fix (config, data, paths, presets).

Command-line entry points catch `UserError` and print its message as one line with a non-zero
exit, instead of a traceback.
"""


import sys


class UserError(Exception):
    """A mistake in what the user gave tfmm: its message says what was expected and received."""


def exit_code(work) -> int:
    """Runs `work()` for a command-line entry point: 0, or 2 after printing `error: <message>`
    on stderr when it raises a `UserError` (one line, no traceback)."""
    try:
        work()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
