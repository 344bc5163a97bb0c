"""User-facing errors: one line naming the file or field and the problem; the CLI exits with 2."""


class UserError(Exception):
    """Bad input from the user (a file, a field, an argument). Printed as one line, exit code 2."""

    def __init__(self, where: object, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")
