"""Bad user input and exit codes: one exception type, turned into one message and exit code 2 at every CLI."""
from __future__ import annotations

import functools
import sys

EXIT_USER_ERROR, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


class UserError(Exception):
    """Bad input (config, data, paths, method/model pairs). Holds every problem found, not just the first."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def render(self) -> str:
        head = "error: " if len(self.problems) == 1 else f"error: {len(self.problems)} problems:\n  "
        return head + "\n  ".join(self.problems)


def exits_on_user_error(fn):
    """Bad input ends in one message on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except UserError as e:
            print(e.render(), file=sys.stderr)
            return EXIT_USER_ERROR

    return wrapper
