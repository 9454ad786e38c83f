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


def test_a_decision_holds_exactly_what_pass_2_applies():
    from t2core.adapt import Decision

    with pytest.raises(ConfigError, match="needs one mixing weight each"):
        Decision("math", ("svf:a", "svf:b"))  # two experts, no weights: nothing says how to apply them
    with pytest.raises(ConfigError, match="2 mixing weights for 1 experts"):
        Decision("math", ("svf:a",), (0.5, 0.5))
    assert Decision("math", ("svf:a", "svf:b"), (0.3, 0.7)).alphas == (0.3, 0.7)


def test_pass_2_applies_a_mixture_decision_whole(tiny, t2_home, data_dir):
    """A strategy that mixes: pass 2 answers those questions with z' = Σ α_k z_k (not with the first
    expert), exactly as the mixture materialised by hand does."""
    from dataclasses import asdict

    import torch

    from t2core.adapt import Decision, Strategy
    from t2core.adapt.twopass import answer, two_pass
    from t2core.evaluate import EvalConfig, plan_eval
    from t2core.experts import ExpertRef
    from t2core.sampling import GenerationConfig
    from t2core.svf import ExpertHeader, SVFConfig, materialised, save_expert
    from t2core.svf.mixture import mixture_policy
    from t2core.variants import VariantRef, resolve_variant
    from tests.conftest import random_experts

    svd, policies, bank = random_experts(tiny, 2, scale=0.3, seed=11)
    refs = []
    for i, p in enumerate(policies):
        header = ExpertHeader(base_weights_hash=tiny.weights_hash, model=tiny.alias, task="gsm8k",
                              svf=asdict(SVFConfig()), ranks={n: int(s.shape[0]) for n, (_, s, _) in svd.items()})
        refs.append(ExpertRef.resolve(str(save_expert(t2_home / f"e{i}.safetensors", p, header))))
    ids, alphas = (refs[0].id, refs[1].id), (0.3, 0.7)
    paths = {r.id: str(r.path) for r in refs}

    class Mixing(Strategy):
        name = "test-mixing"
        spec = "test-mixing"

        @classmethod
        def spec_of(cls, inputs):
            return cls.spec

        @classmethod
        def build(cls, inputs):
            return cls()

        def decide(self, sampler, questions, experts, **kw):
            return [Decision("math", ids, alphas) if i % 2 == 0 else Decision("math", ids[:1])
                    for i in range(len(questions))]

    asked = []

    def variant_of(i, a):
        asked.append((i, a))
        return resolve_variant(tiny, VariantRef("svf", i, a, paths=tuple(paths[x] for x in i)))

    planned = plan_eval(tiny.weights_hash, EvalConfig("arc_easy_cloze", limit=4, generation=GenerationConfig(
        batch_size=4)), data_dir)
    smp = make_sampler("hf", loaded=tiny)
    res = two_pass(tiny, planned, VariantRef(dispatch="test-mixing"), Mixing(), ExpertSet(()), variant_of, smp)
    assert sorted(asked) == sorted([(ids, alphas), (ids[:1], ())])
    mixed = [r for r in res.samples if r.idx % 2 == 0]
    assert all(r.expert_ids == ids and r.alphas == alphas for r in mixed)

    by_hand = mixture_policy(bank, torch.tensor(alphas), "mlp")
    samples = [planned.dataset.samples[r.idx] for r in mixed]
    task = planned.task
    with materialised(tiny.model, svd, by_hand):
        want = smp.choose([task.messages(s) for s in samples], [task.candidates(s) for s in samples],
                          planned.cfg.generation)
    assert [r.output for r in mixed] == [c.text for c in want]
    # and the mixture is not expert 1 alone: its scores differ
    v1 = resolve_variant(tiny, VariantRef("svf", ids[:1], paths=(paths[ids[0]],)))
    with materialised(tiny.model, svd, by_hand):
        lm = [c.choice_logprobs for c in smp.choose([task.messages(s) for s in samples], [task.candidates(s) for s in samples],
                                          planned.cfg.generation)]
    one = [c.choice_logprobs for c in answer(task, samples, smp, planned.cfg.generation, v1)]
    assert lm != one
