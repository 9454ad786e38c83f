"""The dispatch interface: decisions, the expert set, the strategy registry (paper §3.3).

A strategy looks at questions in pass 1 and returns one `Decision` per question: the category
it saw, and the experts (with mixing weights for a mixture) that pass 2 answers with. Which
expert serves which category is not a table in any strategy: an expert serves the category of
the task it was trained on (`Task.category`: GSM8K → math, MBPP → code, ARC-Easy → reasoning),
so `ExpertSet.from_refs` builds the map from the experts' own headers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from t2core.errors import ConfigError, UnknownNameError
from t2core.registry import Registry
from t2core.tasks import get_task
from t2core.variants import check_mixture


@dataclass(frozen=True)
class Decision:
    """Pass 1's verdict on one question, as the catalog records it per sample."""

    category: str  # one of CATEGORIES
    expert_ids: tuple[str, ...] = ()  # () = base weights
    alphas: tuple[float, ...] = ()  # mixing weights when several experts are combined
    raw: str = ""  # what the model said (generated text or the picked option), for audits

    def __post_init__(self) -> None:
        """Exactly what pass 2 applies: the base weights, one expert, or a mixture with one weight per
        expert (`twopass` applies it whole)."""
        check_mixture(self.expert_ids, self.alphas)

    @property
    def label(self) -> str:
        """The `samples.decision` column: the category, and the expert it picked."""
        return self.category if not self.expert_ids else f"{self.category}->{','.join(self.expert_ids)}"

    @property
    def applies(self) -> str:
        """What pass 2 answers with, in words: "base weights", "expert svf:…", or "mixture 0.3×svf:… + 0.7×svf:…"."""
        if not self.expert_ids:
            return "base weights"
        if not self.alphas:
            return f"expert {self.expert_ids[0]}"
        return "mixture " + " + ".join(f"{a:.3g}×{e}" for e, a in zip(self.expert_ids, self.alphas, strict=True))


#: What a strategy is handed (`Strategy.experts`): "by-category" is one expert per dispatch category, each
#: serving its training task's category (prompt, cls-expert); "set" is the experts as given, whatever
#: their tasks, for a strategy that picks among or mixes them itself (few-shot's ingredients).
EXPERT_VIEWS = ("by-category", "set")


@dataclass(frozen=True)
class ExpertSet:
    """The experts available to dispatch, keyed by the category each one serves."""

    by_category: tuple[tuple[str, str], ...] = ()  # (category, expert id), sorted ("by-category" only)
    ids: tuple[str, ...] = ()  # every expert given to the run, sorted

    @classmethod
    def of(cls, strategy: type[Strategy] | Strategy, refs) -> ExpertSet:
        """The experts `strategy` declares it needs (`Strategy.experts`), from the run's `ExpertRef`s: a
        strategy is never handed an empty set in place of the experts it was given."""
        if strategy.experts == "by-category":
            return cls.from_refs(refs)
        return cls((), tuple(sorted(r.id for r in refs)))

    @classmethod
    def from_refs(cls, refs) -> ExpertSet:
        """From `ExpertRef`s: each serves its training task's category; two experts for one category
        are ambiguous and refused."""
        refs = list(refs)
        seen: dict[str, str] = {}
        for ref in refs:
            cat = get_task(ref.header.task).category
            if cat == "other":
                raise ConfigError(f"expert {ref.id} was trained on {ref.header.task!r}, which has no dispatch "
                                  "category; dispatch needs experts for math, code or reasoning tasks.")
            if cat in seen:
                raise ConfigError(f"experts {seen[cat]} and {ref.id} both serve {cat!r}; give one expert per category.")
            seen[cat] = ref.id
        return cls(tuple(sorted(seen.items())), tuple(sorted(r.id for r in refs)))

    def decide(self, category: str, raw: str = "") -> Decision:
        """The decision for a question classified as `category` (no expert for it: base weights)."""
        expert = dict(self.by_category).get(category)
        return Decision(category, (expert,) if expert else (), raw=raw)


@dataclass(frozen=True)
class StrategyInputs:
    """What naming (`spec_of`, while planning) and building (`build`) a strategy may use, resolved by
    the operation that runs it: pass 1's settings, the classification expert z^c, the few-shot search."""

    formulation: str = "generate"  # pass 1 of prompt: generate (paper) or choice
    max_new_tokens: int = 32
    prompt: str = "t2"  # the prompt strategy's classification prompt (t2core/adapt/pass1.py)
    strip_format: bool = False  # the prompt strategy sees the question without the task's format instructions
    cls_formulation: str = ""  # cls-expert's pass 1: generate or choice ("": `formulation`)
    batch_size: int = 8
    dtype: str = "float32"
    cls_name: str = ""  # z^c's variant name (the strategy needs "cls-expert")
    cls_variant: object = None  # z^c ready to apply (`t2core.variants.Variant`), when building
    search_id: str = ""  # the few-shot search's run id (the strategy needs "search")
    search_expert: str = ""  # the mixture it stored, when building


class Strategy(ABC):
    """Pass 1 of two-pass inference. A strategy says what it needs, so that no caller branches on its
    name: `per_question` (it decides question by question, so `t2 ask` can use it) or one decision for the
    whole task; `experts`: how the run's experts reach `decide` (EXPERT_VIEWS: one per category, or the set
    as given); `needs`: "cls-expert" (z^c) and/or "search" (a few-shot search)."""

    name: str
    per_question: bool = True
    experts: str = "by-category"
    needs: tuple[str, ...] = ()

    @classmethod
    @abstractmethod
    def spec_of(cls, inputs: StrategyInputs) -> str:
        """The spec of the strategy `build(inputs)` makes, before it is built (plans name runs with it)."""

    @classmethod
    @abstractmethod
    def build(cls, inputs: StrategyInputs) -> Strategy:
        """The strategy, from what the operation resolved for it."""

    @property
    @abstractmethod
    def spec(self) -> str:
        """The strategy and every setting that changes its decisions (run ids hash it)."""

    def questions(self, task, samples: list) -> list[str]:
        """What pass 1 classifies, one per sample: by default the question as the task puts it to the model
        (its user turn, format instructions included)."""
        return [task.messages(s)[-1]["content"] for s in samples]

    @abstractmethod
    def decide(self, sampler, questions: list[str], experts: ExpertSet, **sampler_kw) -> list[Decision]:
        """One decision per question, in order; `sampler` runs the model as pass 1 needs it, called
        with `sampler_kw` (e.g. an expert sent as vectors)."""


_STRATEGIES: Registry[type[Strategy]] = Registry("adaptation strategy")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    if cls.experts not in EXPERT_VIEWS:  # refused where it is declared, not when a run hands it experts
        raise UnknownNameError("expert view", cls.experts, list(EXPERT_VIEWS),
                               hint=f"(strategy {cls.name!r}'s `experts`)")
    _STRATEGIES.register(cls.name, cls)
    return cls


def strategy_names() -> list[str]:
    return _STRATEGIES.names()


def check_strategy(name: str) -> str:
    """`name` if a strategy is registered under it (UnknownNameError: one line naming the known ones)."""
    strategy_class(name)
    return name


def strategy_class(name: str) -> type[Strategy]:
    """The registered strategy `name` (UnknownNameError: one line naming the known ones)."""
    return _STRATEGIES.get(name)


def get_strategy(name: str, **kwargs) -> Strategy:
    return _STRATEGIES.get(name)(**kwargs)
