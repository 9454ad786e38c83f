"""Answer extraction, with hand-worked expected values."""

import pytest

from t2core.tasks.answers import (
    extract_choice,
    extract_code,
    extract_number,
    last_boxed,
    math_equal,
    normalize_math,
    numbers_equal,
)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("So she earns 9 * 2 = $18.\n#### 18", "18"),
        ("The answer is: 1,250.", "1250"),
        ("First 3 apples, then 4 more: 7", "7"),
        ("The answer is: $12.50", "12.5"),
        ("answer: -4", "-4"),
        ("no digits here", None),
    ],
)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


def test_numbers_equal():
    assert numbers_equal("18.0", "18")
    assert not numbers_equal("17", "18")
    assert not numbers_equal(None, "1")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("B", "B"),
        ("The answer is C.", "C"),
        ("(D) because plants", "D"),
        ("A. safety goggles", "A"),
        ("Answer: 3", "3"),
        ("I think it is breathing mask", "B"),  # option text, no letter
        ("none of these", None),
    ],
)
def test_extract_choice(text, expected):
    labels = ("1", "2", "3", "4") if expected == "3" else ("A", "B", "C", "D")
    choices = ("safety goggles", "breathing mask", "rubber gloves", "lead apron")
    assert extract_choice(text, labels, choices) == expected


def test_boxed_and_normalisation():
    assert last_boxed(r"so \boxed{1} then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{\left( 3, \frac{\pi}{2} \right)}") == r"\left( 3, \frac{\pi}{2} \right)"
    assert last_boxed("no box") is None
    assert normalize_math(r"\dfrac12") == r"\frac{1}{2}"
    assert normalize_math("0.5") == r"\frac{1}{2}"
    assert normalize_math("x = 5") == "5"
    assert normalize_math(r"10\%") == "10"
    assert normalize_math(r"90^\circ") == "90"
    assert normalize_math("1,000") == "1000"
    assert math_equal(r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})")
    assert math_equal("3/4", r"\frac{3}{4}")
    assert not math_equal("3/5", r"\frac{3}{4}")
    assert not math_equal(None, "1")


def test_extract_code():
    out = "Here:\n```python\ndef f(x):\n    return x\n```\nDone."
    assert extract_code(out) == "def f(x):\n    return x\n"
    assert extract_code("def g(): pass") == "def g(): pass"
    assert "def h" in extract_code("```python\ndef h():\n  return 1")  # unterminated fence
