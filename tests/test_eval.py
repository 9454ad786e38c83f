"""Evaluation: scoring with a dummy sampler (hand-computed), the real HF sampler on tiny-random."""

import re

import pytest

from t2core.errors import ConfigError
from t2core.evaluate import EvalConfig, evaluate, plan_eval
from t2core.sampling import GenerationConfig, make_sampler
from t2core.tasks import load_split


def test_dummy_sampler_accuracy_is_exact(tiny, data_dir):
    ds = load_split("arc_easy", "test", data_dir, limit=10)
    right = {s.question for s in ds.samples[:7]}
    answers = {s.question: s.answer for s in ds.samples}

    def respond(messages):
        q = messages[-1]["content"].split("\n\n")[0]
        return f"The answer is {answers[q]}" if q in right else "I do not know"

    res = evaluate(tiny, EvalConfig("arc_easy", limit=10), data_dir, sampler=make_sampler("dummy", respond=respond))
    assert res.accuracy == pytest.approx(0.7)
    assert [s.correct for s in res.samples] == [True] * 7 + [False] * 3
    assert res.samples[0].parsed == ds.samples[0].answer and res.samples[9].parsed is None
    assert res.task_version == "2" and list(res.data_files.values())[0] == (
        "ce32a0774b4beb1977d2c6b16dda5dd2b24fdc9c7f506882c452678676bd09be")


def test_run_id_is_content_addressed(tiny, data_dir):
    a = plan_eval(tiny.weights_hash, EvalConfig("gsm8k", limit=5), data_dir)[2]
    assert a == plan_eval(tiny.weights_hash, EvalConfig("gsm8k", limit=5), data_dir)[2]
    assert a != plan_eval(tiny.weights_hash, EvalConfig("gsm8k", limit=6), data_dir)[2]
    assert a != plan_eval(tiny.weights_hash, EvalConfig("gsm8k", limit=5, generation=GenerationConfig(seed=1)), data_dir)[2]


def test_hf_sampler_on_tiny_random(tiny, data_dir):
    cfg = EvalConfig("gsm8k", limit=5, generation=GenerationConfig(max_new_tokens=6, batch_size=2))
    res = evaluate(tiny, cfg, data_dir)
    assert len(res.samples) == 5
    assert all(0 < s.n_new_tokens <= 6 for s in res.samples)
    # greedy decoding is deterministic, and batching must not change the answers
    again = evaluate(tiny, EvalConfig("gsm8k", limit=5, generation=GenerationConfig(max_new_tokens=6, batch_size=5)),
                     data_dir)
    assert [s.output for s in res.samples] == [s.output for s in again.samples]


def test_code_task_end_to_end_with_dummy(tiny, data_dir):
    ds = load_split("humaneval", "test", data_dir, limit=4)
    sols = {s.prompt: s.solution for s in ds.samples}

    def respond(messages):
        stub = re.search(r"```python\n(.*)```", messages[-1]["content"], re.S).group(1)
        return f"```python\n{sols[stub]}\n```" if stub.startswith("from typing") else "```python\npass\n```"

    res = evaluate(tiny, EvalConfig("humaneval", limit=4), data_dir, sampler=make_sampler("dummy", respond=respond))
    expected = [s.prompt.startswith("from typing") for s in ds.samples]
    assert [s.correct for s in res.samples] == expected and any(expected)


def test_config_validation():
    with pytest.raises(ConfigError, match="limit=0"):
        EvalConfig("gsm8k", limit=0)
    with pytest.raises(ConfigError, match="dtype='fp8'"):
        GenerationConfig(dtype="fp8")
    with pytest.raises(ConfigError, match="batch_size=0"):
        GenerationConfig(batch_size=0)


def test_choice_task_evaluation_is_exact_with_dummy(tiny, data_dir):
    """arc_easy_cloze: the sampler picks a candidate; the task scores the pick against the key."""
    from t2core.tasks import get_task

    task = get_task("arc_easy_cloze")
    ds = load_split("arc_easy_cloze", "valid", data_dir, limit=8)
    gold = {s.question: task.gold_candidate(s) for s in ds.samples}
    right = {s.question for s in ds.samples[::2]}

    def pick(conv, cands):
        q = conv[-1]["content"].removeprefix("Question: ")
        return gold[q] if q in right else (gold[q] + 1) % len(cands)

    res = evaluate(tiny, EvalConfig("arc_easy_cloze", "valid", limit=8), data_dir,
                   sampler=make_sampler("dummy", pick=pick))
    assert [s.correct for s in res.samples] == [True, False] * 4
    assert res.samples[0].parsed == ds.samples[0].answer and res.samples[0].output.startswith("Answer: ")
    assert res.samples[1].parsed != ds.samples[1].answer


def test_choice_task_on_tiny_random_uses_choose(tiny, data_dir):
    res = evaluate(tiny, EvalConfig("arc_easy_cloze", limit=4, generation=GenerationConfig(batch_size=2)), data_dir)
    ds = load_split("arc_easy_cloze", "test", data_dir, limit=4)
    for s, row in zip(ds.samples, res.samples, strict=True):
        assert row.output in [f"Answer: {c}" for c in s.choices] and row.parsed in s.labels
        assert row.n_new_tokens == 0  # scored, not generated


@pytest.mark.parametrize("asked, runs", [(256, 256), (None, 512), (40, 40)])
def test_max_new_tokens_is_what_was_asked_and_what_the_run_id_hashes(tiny, data_dir, asked, runs):
    """256 used to mean "not set" and was replaced by the task's default (MATH: 512) while the run id
    hashed 256; now None is the only "not set", and the plan hashes the value that runs."""
    seen = []

    def respond(messages):
        return "\\boxed{1}"

    sampler = make_sampler("dummy", respond=respond)
    generate = sampler.generate
    sampler.generate = lambda convs, cfg, **kw: seen.append(cfg.max_new_tokens) or generate(convs, cfg, **kw)
    cfg = EvalConfig("math", limit=2, generation=GenerationConfig(max_new_tokens=asked))
    plan = plan_eval(tiny.weights_hash, cfg, data_dir, backend="dummy")  # the engine that answers is part of the id
    res = evaluate(tiny, cfg, data_dir, sampler=sampler)
    assert seen == [runs] and plan.cfg.generation.max_new_tokens == runs
    assert res.config["eval"]["generation"]["max_new_tokens"] == runs and res.run_id == plan.run_id
    explicit = EvalConfig("math", limit=2, generation=GenerationConfig(max_new_tokens=runs))
    assert plan_eval(tiny.weights_hash, explicit, data_dir, backend="dummy").run_id == plan.run_id  # default = that number
