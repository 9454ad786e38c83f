"""Pass 1 as the paper's recipe has it (issue 34): the released classification prompt, the question without the
task's format instructions, the cls-expert in the formulation it was trained in; each a validated setting that
names its runs."""

import pytest

from t2core.adapt import ExpertSet, StrategyInputs, get_strategy, strategy_class
from t2core.adapt.pass1 import RELEASED_PROMPT, bare_question, get_prompt
from t2core.errors import ConfigError, UnknownNameError
from t2core.sampling import make_sampler
from t2core.tasks import get_task
from t2core.tasks.base import ChoiceSample, CodeSample, MathSample
from t2core.tasks.categories import CATEGORIES, SYSTEM, category_answer

EXPERTS = ExpertSet((("code", "svf:bbbb"), ("math", "svf:aaaa"), ("reasoning", "svf:cccc")))
ARC = ChoiceSample(id="a", question="Which is a gas?", labels=("A", "B"), choices=("ice", "steam"), answer="B")


def test_the_released_prompt_is_quoted_and_t2s_answers_are_unchanged():
    assert RELEASED_PROMPT.startswith("# Analyze the given question and classify it into one of four categories")
    assert RELEASED_PROMPT.endswith("Format your response as follows:\n    Classification: \\boxed{category}")
    assert get_prompt("released").answer_for("math") == "Classification: \\boxed{math}"
    assert get_prompt("t2").system == SYSTEM
    assert [get_prompt("t2").answer_for(c) for c in CATEGORIES] == [category_answer(c) for c in CATEGORIES]


def test_the_bare_question_has_no_format_instructions():
    gsm = MathSample(id="g", question="Tom has 3 apples. How many?", answer="3")
    assert "step by step" in get_task("gsm8k").messages(gsm)[-1]["content"]
    assert bare_question(get_task("gsm8k"), gsm) == "Tom has 3 apples. How many?"
    assert bare_question(get_task("math"), gsm) == "Tom has 3 apples. How many?"
    mbpp = CodeSample(id="m", prompt="Write a function to add two numbers.", tests="assert add(1, 2) == 3")
    assert "code block" in get_task("mbpp").messages(mbpp)[-1]["content"]
    assert bare_question(get_task("mbpp"), mbpp) == "Write a function to add two numbers."
    assert bare_question(get_task("arc_challenge"), ARC) == "Which is a gas?\nOptions:\nA. ice\nB. steam\n"
    assert bare_question(get_task("arc_challenge_cloze"), ARC) == "Which is a gas?"


def test_the_prompt_strategy_sends_the_released_prompt_and_the_bare_question():
    seen = []

    def respond(messages):
        seen.append(messages)
        return "Classification: \\boxed{math}"

    strat = get_strategy("prompt", prompt="released", strip_format=True, max_new_tokens=512)
    gsm = MathSample(id="g", question="Tom has 3 apples. How many?", answer="3")
    qs = strat.questions(get_task("gsm8k"), [gsm])
    out = strat.decide(make_sampler("dummy", respond=respond), qs, EXPERTS)
    assert seen[0] == [{"role": "system", "content": RELEASED_PROMPT},
                       {"role": "user", "content": "Tom has 3 apples. How many?"}]
    assert out[0].expert_ids == ("svf:aaaa",)
    # the choice formulation scores the answers the released prompt asks for
    picked = []
    strat = get_strategy("prompt", formulation="choice", prompt="released")
    strat.decide(make_sampler("dummy", pick=lambda m, c: picked.append(c) or 0), ["x"], EXPERTS)
    assert picked[0] == tuple(f"Classification: \\boxed{{{c}}}" for c in CATEGORIES)
    # by default the question is the task's user turn, format instructions included (earlier runs unchanged)
    assert get_strategy("prompt").questions(get_task("gsm8k"), [gsm]) == [get_task("gsm8k").messages(gsm)[-1]["content"]]


def test_each_pass1_setting_names_its_runs_and_the_defaults_keep_the_old_names():
    spec = strategy_class("prompt").spec_of
    assert spec(StrategyInputs()) == "prompt/generate/32"
    names = {spec(StrategyInputs(prompt="released")), spec(StrategyInputs(strip_format=True)),
             spec(StrategyInputs(max_new_tokens=512)), spec(StrategyInputs()),
             spec(StrategyInputs(formulation="choice"))}
    assert len(names) == 5
    cls = strategy_class("cls-expert").spec_of
    assert cls(StrategyInputs(cls_name="svf:z", formulation="generate")) == "cls-expert/svf:z/generate/32"
    assert cls(StrategyInputs(cls_name="svf:z", formulation="generate", cls_formulation="choice")) == \
        "cls-expert/svf:z/choice/32"


def test_the_cls_expert_sees_what_it_was_trained_on():
    class _Variant:
        name = "svf:z"

        def using(self, sampler):
            import contextlib

            return contextlib.nullcontext(), {}

    s = strategy_class("cls-expert").build(StrategyInputs(prompt="released", strip_format=True, formulation="generate",
                                                          cls_formulation="choice", cls_variant=_Variant()))
    assert (s.inner.formulation, s.inner.prompt, s.inner.strip_format) == ("choice", "t2", False)
    gsm = MathSample(id="g", question="Tom has 3 apples.", answer="3")
    assert s.questions(get_task("gsm8k"), [gsm]) == [get_task("gsm8k").messages(gsm)[-1]["content"]]


def test_bad_pass1_settings_fail_in_one_line():
    from t2core.profiles import AdaptSettings

    with pytest.raises(UnknownNameError, match="unknown pass-1 prompt 'paper'") as e:
        AdaptSettings(pass1_prompt="paper")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="cls_formulation 'letters'"):
        AdaptSettings(cls_formulation="letters")
    with pytest.raises(ConfigError, match="pass1_max_new_tokens=0"):
        AdaptSettings(pass1_max_new_tokens=0)
    with pytest.raises(ConfigError, match="tie_break 'first'"):
        AdaptSettings(tie_break="first")
    with pytest.raises(ConfigError, match="unknown CEMConfig setting 'gens'"):
        AdaptSettings(light_cem=(("gens", 10),))


def test_the_paper_profile_resolves_its_recipe():
    from t2core.profiles import get_profile

    p = get_profile("paper")
    assert p.pass1_kwargs() == {"formulation": "generate", "cls_formulation": "choice", "prompt": "released",
                                "strip_format": True, "pass1_max_new_tokens": 512}
    light, full = p.light_few_shot_config("math"), p.few_shot_config("math")
    assert (light.shots, light.cem.generations, full.shots, full.cem.generations) == (3, 10, 10, 100)
    assert light.tie_break == full.tie_break == "loglik"
    rl = p.rl_config("gsm8k")
    assert (rl.optimizer, rl.seq_reduction, rl.kl_direction, rl.valid_limit, rl.svf.param) == \
        ("adamw-cosine", "sum", "policy-ref", None, "sigmoid")
    assert p.kl_grid("gsm8k") == (0.0, 0.1, 0.2, 0.3) and p.cls_config().valid_limit is None
    # the other profiles keep t2's earlier choices, so their stored runs keep their ids
    for name in ("smol", "tiny"):
        q = get_profile(name)
        assert q.kl_grid("gsm8k") == () and q.pass1_kwargs()["prompt"] == "t2" and q.svf_param == "direct"
