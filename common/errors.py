"""The one exception type for bad user input; the CLI turns it into a message and exit code 2."""

EXIT_USER_ERROR = 2


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
