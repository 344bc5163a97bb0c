"""User-facing errors: one line naming the file or field and the problem; the CLI exits with 2.

``check_number`` is the one validator of numeric settings (scene fields, command options, settings
dataclasses); ``number_arg`` wraps it as an argparse ``type``.
"""

from __future__ import annotations

import math
from typing import Callable


class UserError(Exception):
    """Bad input from the user (a file, a field, an argument). Printed as one line, exit code 2.

    Survives pickling (``__reduce__``), so it crosses process pools intact.
    """

    def __init__(self, where: object, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")

    def __reduce__(self):
        return type(self), (self.where, self.problem)


def _limits(minimum, maximum, above, below) -> str:
    low = f">= {minimum:g}" if minimum is not None else f"> {above:g}" if above is not None else ""
    high = f"<= {maximum:g}" if maximum is not None else f"< {below:g}" if below is not None else ""
    return " and ".join(s for s in (low, high) if s)


def check_number(value: object, where: object, *, minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, below: float | None = None, integer: bool = False) -> float | int:
    """``value`` as a finite float (an int when ``integer``) within the limits, else a UserError
    naming ``where``: ``minimum``/``maximum`` are inclusive, ``above``/``below`` exclusive.

    Rejects booleans, text, NaN and infinities; ``integer`` also rejects non-whole numbers.
    """
    if (isinstance(value, bool) or type(value).__name__ == "bool_"
            or not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
        raise UserError(where, f"must be a {'whole ' if integer else ''}number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise UserError(where, f"must be a finite number, got {value!r}")
    if integer and number != int(number):
        raise UserError(where, f"must be a whole number, got {value!r}")
    if ((minimum is not None and number < minimum) or (maximum is not None and number > maximum)
            or (above is not None and number <= above) or (below is not None and number >= below)):
        raise UserError(where, f"must be {_limits(minimum, maximum, above, below)}, got {value!r}")
    return int(number) if integer else number


def number_arg(*, minimum: float | None = None, maximum: float | None = None, above: float | None = None,
               below: float | None = None, integer: bool = False) -> Callable[[str], float | int]:
    """An argparse ``type``: parses the text and applies :func:`check_number` (argparse names the option)."""
    import argparse

    def parse(text: str) -> float | int:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a {'whole ' if integer else ''}number, got {text!r}") from None
        try:
            return check_number(value, "", minimum=minimum, maximum=maximum, above=above, below=below,
                                integer=integer)
        except UserError as exc:
            raise argparse.ArgumentTypeError(f"{exc.problem.rsplit(', got ', 1)[0]}, got {text!r}") from None

    parse.__name__ = "integer" if integer else "number"
    return parse
