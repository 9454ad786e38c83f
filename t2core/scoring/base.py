"""Scoring schemes: who decides whether an output answers its item (paper §4, the benchmarks' metrics).

A *scheme* is a family of judges, one per *answer kind*:
- `number` (GSM8K): the final number the output states;
- `math` (MATH, MATH-500): the final expression, compared by value;
- `choice` (ARC with listed options): the option the output commits to;
- `cloze` (ARC cloze, the dispatch task): the candidate the model picked by likelihood;
- `code` (MBPP, HumanEval): the program that is run against the tests (the sandbox runs it).

`t2` (the default) judges what an answer means (docs/scoring.md); `released` ports the scorers of
the paper's released code, defects included, so that a t2 number can be put beside the paper's
like for like. A scheme is one file per kind with one `register_judge` call; the registry is the
only list of schemes.

Judges of the kinds number, math, choice and cloze take a batch (`outputs`, `golds`) and return one
`Score` each; a judge of kind `code` is a `ProgramBuilder`: it turns an output into the program
that the sandbox judges against the item's trusted tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from t2core.errors import UnknownNameError
from t2core.registry import Registry

KINDS = ("number", "math", "choice", "cloze", "code")
DEFAULT_SCHEME = "t2"


@dataclass(frozen=True)
class Score:
    parsed: str | None  # what was extracted from the output (None: nothing parseable)
    correct: bool
    detail: str = ""  # e.g. sandbox error for code tasks, or why nothing was extracted


@dataclass(frozen=True)
class Gold:
    """What a judge needs of an item: its gold answer and, for choices, the item's labels and texts."""

    answer: str
    labels: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()


class Judge(Protocol):
    def __call__(self, outputs: list[str], golds: list[Gold]) -> list[Score]: ...


class CodeItem(Protocol):
    """The fields of a code sample a program builder reads (t2core.tasks.base.CodeSample)."""

    prompt: str
    entry_point: str
    setup: str
    prefix: str


ProgramBuilder = Callable[[str, CodeItem], str]


@dataclass(frozen=True)
class Registered:
    scheme: str
    kind: str
    fn: Callable
    source: str  # where its rules come from (t2: this repo's docs/scoring.md; released: the file it ports)


_JUDGES: Registry[Registered] = Registry("judge")
_SCHEMES: dict[str, str] = {}  # scheme -> one-line description


def register_scheme(name: str, description: str) -> str:
    if name in _SCHEMES:
        raise ValueError(f"scoring scheme {name!r} is already registered")
    _SCHEMES[name] = description
    return name


def register_judge(scheme: str, kind: str, fn: Callable, source: str) -> Callable:
    if kind not in KINDS:
        raise ValueError(f"answer kind {kind!r} is none of {KINDS}")
    if scheme not in _SCHEMES:
        raise ValueError(f"register the scoring scheme {scheme!r} (register_scheme) before its judges")
    _JUDGES.register(f"{scheme}/{kind}", Registered(scheme, kind, fn, source))
    return fn


def scheme_names() -> list[str]:
    return sorted(_SCHEMES)


def scheme_description(name: str) -> str:
    check_scheme(name)
    return _SCHEMES[name]


def check_scheme(name: str) -> str:
    if name not in _SCHEMES:
        raise UnknownNameError("scoring scheme", name, list(_SCHEMES),
                               hint="Pass --scoring with one of these (t2: the default).")
    return name


def get_judge(scheme: str, kind: str) -> Callable:
    """The judge of `scheme` for answers of `kind`; one line naming the known ones where there is none."""
    check_scheme(scheme)
    key = f"{scheme}/{kind}"
    if key not in _JUDGES:
        have = sorted(r.split("/")[1] for r in _JUDGES.names() if r.startswith(scheme + "/"))
        raise UnknownNameError("judge", key, [f"{scheme}/{k}" for k in have],
                               hint=f"scoring scheme {scheme!r} does not judge {kind!r} answers.")
    return _JUDGES.get(key).fn


def judge_source(scheme: str, kind: str) -> str:
    get_judge(scheme, kind)
    return _JUDGES.get(f"{scheme}/{kind}").source
