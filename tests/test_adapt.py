"""Self-adaptation, pass 1 (paper §3.3): categories from task metadata, prompt dispatch in both
formulations, with a dummy sampler (hand-written answers) and the tiny model."""

from dataclasses import dataclass

import pytest

from t2core.adapt import CATEGORIES, ExpertSet, get_strategy
from t2core.errors import ConfigError
from t2core.sampling import make_sampler
from t2core.tasks import get_task
from t2core.tasks.categories import SYSTEM, parse_category


def test_each_paper_task_has_its_category():
    cats = {t: get_task(t).category for t in ("gsm8k", "mbpp", "arc_easy", "math", "humaneval", "arc_challenge",
                                              "arc_easy_cloze", "arc_challenge_cloze")}
    assert cats == {"gsm8k": "math", "mbpp": "code", "arc_easy": "reasoning", "math": "math", "humaneval": "code",
                    "arc_challenge": "reasoning", "arc_easy_cloze": "reasoning", "arc_challenge_cloze": "reasoning"}


@pytest.mark.parametrize("text, cat", [
    ("Category: \\boxed{math}", "math"),
    ("It is about code. \\boxed{ Code }", "code"),
    ("\\boxed{math} no wait \\boxed{reasoning}", "reasoning"),  # the last box counts
    ("\\boxed{others}", "other"),
    ("\\boxed{physics}", "other"),  # not a category: base weights
    ("math", "other"),  # no box
    ("", "other"),
])
def test_parse_category(text, cat):
    assert parse_category(text) == cat


@dataclass
class _Header:
    task: str


@dataclass
class _Ref:
    id: str
    header: _Header


def _experts():
    return ExpertSet.from_refs([_Ref("svf:aaaa", _Header("gsm8k")), _Ref("svf:bbbb", _Header("mbpp")),
                                _Ref("svf:cccc", _Header("arc_easy_cloze"))])


def test_expert_set_maps_categories_from_the_experts_own_tasks():
    ex = _experts()
    assert dict(ex.by_category) == {"math": "svf:aaaa", "code": "svf:bbbb", "reasoning": "svf:cccc"}
    assert ex.decide("math").expert_ids == ("svf:aaaa",) and ex.decide("other").expert_ids == ()
    assert ex.decide("code").label == "code->svf:bbbb" and ex.decide("other").label == "other"
    with pytest.raises(ConfigError, match="both serve 'math'"):
        ExpertSet.from_refs([_Ref("svf:a", _Header("gsm8k")), _Ref("svf:b", _Header("math"))])


def test_prompt_dispatch_generate_formulation():
    seen = []

    def respond(messages):
        seen.append(messages)
        q = messages[-1]["content"]
        return {"Sort a list": "\\boxed{code}", "2+2?": "Category: \\boxed{math}"}.get(q, "I am not sure")

    sampler = make_sampler("dummy", respond=respond)
    out = get_strategy("prompt").decide(sampler, ["Sort a list", "2+2?", "Why is the sky blue?"], _experts())
    assert [d.category for d in out] == ["code", "math", "other"]
    assert [d.expert_ids for d in out] == [("svf:bbbb",), ("svf:aaaa",), ()]
    assert out[2].raw == "I am not sure"
    assert seen[0] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Sort a list"}]


def test_prompt_dispatch_choice_formulation_scores_the_four_answers():
    def pick(messages, cands):
        assert cands == tuple(f"Category: \\boxed{{{c}}}" for c in CATEGORIES)
        return 2 if "sky" in messages[-1]["content"] else 3

    sampler = make_sampler("dummy", pick=pick)
    out = get_strategy("prompt", formulation="choice").decide(sampler, ["Why is the sky blue?", "Hello"], _experts())
    assert [(d.category, d.expert_ids) for d in out] == [("reasoning", ("svf:cccc",)), ("other", ())]


def test_prompt_dispatch_on_a_real_model_returns_a_category_per_question(tiny):
    sampler = make_sampler("hf", loaded=tiny)
    qs = ["Write a function that reverses a string.", "What is 12 * 7?"]
    for formulation in ("generate", "choice"):
        out = get_strategy("prompt", formulation=formulation, max_new_tokens=4).decide(sampler, qs, _experts())
        assert len(out) == 2 and all(d.category in CATEGORIES for d in out)


def test_unknown_strategy_and_formulation_are_clear_errors():
    from t2core.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown adaptation strategy 'magic'"):
        get_strategy("magic")
    with pytest.raises(ConfigError, match="formulation 'letters'"):
        get_strategy("prompt", formulation="letters")
