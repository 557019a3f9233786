"""Frozen option sets whose fields carry their default, help and check.

A field declared with `option(default, help, check)` is the one home of a
setting: the Python API validates it with `check`, the command line derives
its flag, type, choices, default and help from it (`keras_nmt.cli`), and
saved runs record it by name. Plain Python: no Keras, no TensorFlow.

Example:

>>> @dataclasses.dataclass(frozen=True)
... class Sizes(Options):
...     units: int = option(256, "state size", integer(minimum=2))
>>> Sizes().replace(units=512).units
512
>>> Sizes(units=0)
Traceback (most recent call last):
ValueError: Invalid units=0; expected an integer >= 2.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Check:
    """How one option is validated and read from a command line.

    Attributes:
        expected: what a valid value is, in words ("an integer >= 1").
        accepts: `value -> bool`.
        parse: `str -> value` for the command line (raises `ValueError`).
        choices: the valid values, when there are a few.
        normalize: applied to a valid value (e.g. `int(numpy.int64(3))`).
    """

    expected: str
    accepts: Callable[[Any], bool]
    parse: Callable[[str], Any] = str
    choices: tuple | None = None
    normalize: Callable[[Any], Any] = lambda value: value


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(minimum: int = 1, optional: bool = False) -> Check:
    """An integer `>= minimum` (or `None` when `optional`)."""
    expected = f"an integer >= {minimum}"
    return Check(
        expected=f"None or {expected}" if optional else expected,
        accepts=lambda v: (
            (optional and v is None) or (_is_int(v) and v >= minimum)
        ),
        parse=int,
        normalize=lambda v: None if v is None else int(v),
    )


def number(
    minimum: float = 0.0,
    *,
    above: bool = False,
    below: float | None = None,
    optional: bool = False,
) -> Check:
    """A finite number `>= minimum` (`> minimum` when `above`), and
    `< below` when given (or `None` when `optional`)."""
    expected = f"a finite number {'>' if above else '>='} {minimum:g}"
    if below is not None:
        expected += f" and < {below:g}"
    if optional:
        expected = f"None or {expected}"

    def accepts(value):
        if optional and value is None:
            return True
        if not _is_real(value) or not math.isfinite(value):
            return False
        if value < minimum or (above and value == minimum):
            return False
        return below is None or value < below

    return Check(
        expected,
        accepts,
        parse=float,
        normalize=lambda v: None if v is None else float(v),
    )


def choice(choices: Sequence[str]) -> Check:
    """One of a few strings."""
    choices = tuple(choices)
    return Check(
        expected=f"one of {list(choices)}",
        accepts=lambda v: v in choices,
        choices=choices,
    )


def flag() -> Check:
    """`True` or `False`."""
    return Check("True or False", lambda v: isinstance(v, bool), bool)


def option(default, help: str, check: Check, **metadata) -> dataclasses.Field:
    """A dataclass field for an `Options` subclass.

    Args:
        default: the default value (checked like any other).
        help: one line for `--help` and the docs.
        check: how values are validated and parsed (`integer`, `number`,
            `choice`, `flag`).
        **metadata: anything else the owner wants to record per field
            (e.g. `resume="may change"`).
    """
    return dataclasses.field(
        default=default, metadata={"help": help, "check": check, **metadata}
    )


class Options:
    """Base of the frozen option dataclasses: checks every field on
    creation, `replace(**changes)` with a clear error for unknown names,
    and plain-dict round trips."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check: Check = field.metadata["check"]
            value = getattr(self, field.name)
            if not check.accepts(value):
                raise ValueError(
                    f"Invalid {field.name}={value!r}; expected "
                    f"{check.expected}."
                )
            object.__setattr__(self, field.name, check.normalize(value))
        self.check_together()

    def check_together(self) -> None:
        """Checks across fields; subclasses raise `ValueError` here."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    def replace(self, **changes):
        """A copy with `changes` applied (and checked)."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no option {unknown[0]!r}; "
                f"expected some of {list(self.names())}."
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Rebuild from `to_dict()`; keys that are not options are
        ignored (a saved file may record more)."""
        names = set(cls.names())
        return cls(**{k: v for k, v in values.items() if k in names})
