"""Exercise checks: pass/fail with a helpful message; strict mode raises."""

import numpy as np
import pytest
import torch

from dlbook.check import CheckFailed, check_close, check_function, check_true


def square(x):
    return x**2


def test_close_passes_and_is_truthy():
    result = check_close("value", np.array([1.0, 2.0]), torch.tensor([1.0, 2.0]), strict=False)
    assert result and result.passed
    assert "pass" in result._repr_html_()


def test_close_reports_where_it_differs():
    result = check_close("value", [1.0, 2.5, 3.0], [1.0, 2.0, 3.0], strict=False, hint="look at x[1]")
    assert not result
    assert "index (1,)" in result.message and "got 2.5" in result.message and "look at x[1]" in result.message


@pytest.mark.parametrize("answer, phrase", [
    (None, "not answered"),
    (..., "not answered"),
    ([1.0, 2.0], "shape"),
    ("abc", "expected a number"),
    ([float("nan")] * 3, "NaN"),
])
def test_close_explains_failures(answer, phrase):
    result = check_close("v", answer, [1.0, 2.0, 3.0], strict=False)
    assert not result and phrase in result.message


def test_function_passes_on_a_correct_function():
    assert check_function("sq", square, lambda x: x * x, [(np.arange(3.0),), (torch.tensor(2.0),)], strict=False)


def test_function_reports_a_stub_as_unanswered():
    def stub(x):
        raise NotImplementedError

    result = check_function("sq", stub, square, [(1.0,)], strict=False)
    assert not result and "not answered yet" in result.message


def test_function_reports_a_crash_without_raising():
    result = check_function("sq", lambda x: x.nope, square, [(np.ones(2),)], strict=False)
    assert not result and "AttributeError" in result.message


def test_function_reports_the_failing_case():
    result = check_function("sq", lambda x: x * 2, square, [(np.array(2.0),), (np.array(3.0),)], strict=False)
    assert not result and result.message.startswith("case 1")


def test_strict_mode_raises_and_env_switches_it(monkeypatch):
    with pytest.raises(CheckFailed, match="sq"):
        check_function("sq", lambda x: x, square, [(3.0,)], strict=True)
    monkeypatch.setenv("DLBOOK_STRICT_CHECKS", "1")
    with pytest.raises(CheckFailed):
        check_true("flag", False)
    monkeypatch.setenv("DLBOOK_STRICT_CHECKS", "0")
    assert not check_true("flag", False)


def test_check_true_messages():
    assert check_true("t", 1 < 2, strict=False)
    assert check_true("t", None, strict=False).message == "not answered yet"
    assert check_true("t", False, message="should be True", strict=False).message == "should be True"


@pytest.mark.parametrize("call, error, match", [
    (lambda: check_close("v", 1.0, 1.0, rtol=-1), ValueError, "rtol"),
    (lambda: check_function("f", square, "ref", [(1.0,)]), TypeError, "reference"),
    (lambda: check_function("f", square, square, []), ValueError, "cases"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_non_callable_candidate_fails_politely():
    result = check_function("f", 3, square, [(1.0,)], strict=False)
    assert not result and "expected a function" in result.message
