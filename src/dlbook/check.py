"""Checks for exercises: tell a student pass or fail, with a message that helps.

A check cell never needs the solution cell: it receives the student's value or function and
compares it with a reference that the check cell computes itself. So a lab can strip every
solution and keep the checks; a stub that still raises ``NotImplementedError`` just fails with
"not answered yet".

Each check returns a :class:`CheckResult` (truthy when passed; shown as a green or red box).
By default a failed check does not raise, so a student sees feedback instead of a traceback.
With ``strict=True``, or the environment variable ``DLBOOK_STRICT_CHECKS=1`` (set by
``make book`` and ``make test``), a failure raises :class:`CheckFailed`, so the book's own
solutions are verified on every build.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np

__all__ = ["CheckFailed", "CheckResult", "check_close", "check_function", "check_true", "strip_solutions"]


class CheckFailed(AssertionError):
    """Raised by a failed check in strict mode."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: its name, whether it passed, and what to tell the student."""

    name: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        return f"[{mark}] {self.name}: {self.message}"

    def _repr_html_(self) -> str:
        colour, mark = ("#009E73", "&#10004; pass") if self.passed else ("#D55E00", "&#10008; not yet")
        return (
            f'<div class="dlbook-check" style="border-left:4px solid {colour};padding:0.3em 0.8em">'
            f"<b>{escape(self.name)}</b>: <span style='color:{colour}'>{mark}</span>"
            f"<br>{escape(self.message)}</div>"
        )


def _is_strict(strict: bool | None) -> bool:
    if strict is None:
        return os.environ.get("DLBOOK_STRICT_CHECKS", "0") == "1"
    return bool(strict)


def _finish(result: CheckResult, strict: bool | None) -> CheckResult:
    if not result.passed and _is_strict(strict):
        raise CheckFailed(str(result))
    return result


def _compare(answer: Any, expected: Any, rtol: float, atol: float) -> str | None:
    """None when ``answer`` matches ``expected``, else a sentence saying how it differs."""
    if answer is None or answer is Ellipsis:
        return "not answered yet (the value is None or ...)"
    try:
        a = np.asarray(answer.detach().cpu() if hasattr(answer, "detach") else answer, dtype=float)
    except (TypeError, ValueError):
        return f"expected a number or array, got {type(answer).__name__}"
    e = np.asarray(expected.detach().cpu() if hasattr(expected, "detach") else expected, dtype=float)
    if a.shape != e.shape:
        return f"shape {a.shape} but expected shape {e.shape}"
    if not np.all(np.isfinite(a)):
        return "contains NaN or inf"
    close = np.isclose(a, e, rtol=rtol, atol=atol)
    if close.all():
        return None
    err = np.abs(a - e)
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape)) if err.ndim else ()
    return (
        f"{int((~close).sum())} of {close.size} values differ; largest error {err.max():.3g} "
        f"at index {where}: got {a[where]:.6g}, expected {e[where]:.6g}"
    )


def check_close(
    name: str,
    answer: Any,
    expected: Any,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    hint: str = "",
    strict: bool | None = None,
) -> CheckResult:
    """Pass when ``answer`` equals ``expected`` elementwise within ``rtol``/``atol``."""
    if rtol < 0 or atol < 0:
        raise ValueError(f"rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    problem = _compare(answer, expected, rtol, atol)
    if problem is None:
        return _finish(CheckResult(name, True, "matches the reference."), strict)
    return _finish(CheckResult(name, False, problem + (f". Hint: {hint}" if hint else "")), strict)


def check_function(
    name: str,
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[tuple[Any, ...]],
    *,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    hint: str = "",
    strict: bool | None = None,
) -> CheckResult:
    """Pass when ``candidate(*case)`` matches ``reference(*case)`` for every case."""
    if not callable(candidate):
        return _finish(CheckResult(name, False, f"expected a function, got {type(candidate).__name__}"), strict)
    if not callable(reference):
        raise TypeError(f"reference must be callable, got {type(reference).__name__}")
    if len(cases) == 0:
        raise ValueError("cases is empty: a check needs at least one input")
    for i, case in enumerate(cases):
        try:
            got = candidate(*case)
        except NotImplementedError:
            return _finish(CheckResult(name, False, "not answered yet: the function still raises NotImplementedError"), strict)
        except Exception as exc:  # the student's code failed: report, don't crash the check
            return _finish(CheckResult(name, False, f"case {i} raised {type(exc).__name__}: {exc}"), strict)
        problem = _compare(got, reference(*case), rtol, atol)
        if problem is not None:
            msg = f"case {i}: {problem}" + (f". Hint: {hint}" if hint else "")
            return _finish(CheckResult(name, False, msg), strict)
    return _finish(CheckResult(name, True, f"matches the reference on all {len(cases)} cases."), strict)


def check_true(name: str, condition: Any, *, message: str = "", strict: bool | None = None) -> CheckResult:
    """Pass when ``condition`` is truthy; ``message`` explains what was expected."""
    if condition is None or condition is Ellipsis:
        return _finish(CheckResult(name, False, "not answered yet"), strict)
    ok = bool(condition)
    return _finish(CheckResult(name, ok, "correct." if ok else (message or "not yet correct.")), strict)


_SOLUTION_START = re.compile(r"\{solution-start\}")
_SOLUTION_END = re.compile(r"\{solution-end\}")


def strip_solutions(notebook: dict) -> dict:
    """A copy of a notebook (nbformat JSON as a dict) without its exercise solutions.

    Removes every cell from a ``{solution-start}`` markdown cell through the matching
    ``{solution-end}`` cell, which turns a chapter into a lab: the starter cells (which raise
    ``NotImplementedError``) and the check cells stay, and the checks report "not answered yet".
    """
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise TypeError("notebook must be a notebook dict with a 'cells' list (json.load of an .ipynb)")
    kept, inside = [], False
    for i, cell in enumerate(notebook["cells"]):
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "markdown" and _SOLUTION_START.search(source):
            if inside:
                raise ValueError(f"cell {i}: solution-start inside another solution")
            inside = True
        elif cell.get("cell_type") == "markdown" and _SOLUTION_END.search(source):
            if not inside:
                raise ValueError(f"cell {i}: solution-end without a solution-start")
            inside = False
        elif not inside:
            kept.append(copy.deepcopy(cell))
    if inside:
        raise ValueError("a solution-start has no solution-end")
    return {**notebook, "cells": kept}
