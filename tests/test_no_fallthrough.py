"""No silent fallthrough (issue 40): a strategy gets the experts it declares it needs, `t2 ask` applies a
decision as two-pass evaluation does (base, one expert or a mixture, named in its answer), a task's
reference completion is its own (not a branch on its name), and each dispatch on a name is one error line."""

from dataclasses import asdict

import pytest

from t2core.adapt import Decision, ExpertSet, Strategy, register_strategy
from t2core.errors import ConfigError, UnknownNameError
from t2core.evaluate import EvalConfig
from t2core.sampling import GenerationConfig
from t2core.sampling.base import register_sampler
from t2core.sampling.dummy import DummySampler
from tests.conftest import stored_expert_files as _stored_experts


class _Fixed(Strategy):
    """Spec, build: the least a strategy must define besides `decide`."""

    @classmethod
    def spec_of(cls, inputs):
        return cls.name

    @classmethod
    def build(cls, inputs):
        return cls()

    @property
    def spec(self) -> str:
        return self.name


@register_strategy
class UniformMix(_Fixed):
    """Not per question: the whole task answered with the uniform mixture of the experts it was given."""

    name = "test-uniform-mix"
    per_question = False
    experts = "set"

    def decide(self, sampler, questions, experts, **kw):
        k = len(experts.ids)
        return [Decision("task", experts.ids, (1.0 / k,) * k if k > 1 else ())] * len(questions)


@register_strategy
class AlwaysMix(_Fixed):
    """Per question, but every question gets a 0.3 / 0.7 mixture of the first two experts by id."""

    name = "test-always-mix"
    experts = "set"

    def decide(self, sampler, questions, experts, **kw):
        return [Decision("math", experts.ids[:2], (0.3, 0.7)) for _ in questions]


def test_a_strategy_that_is_not_per_question_is_handed_the_experts_it_was_given(tiny, t2_home, data_dir):
    """It used to get an empty expert set and answer with the base weights, recorded under its name."""
    from catalog import Catalog
    from catalog.execute import execute
    from t2ops import adaptation

    _, _, refs = _stored_experts(tiny, t2_home, 2)
    ev = EvalConfig("arc_easy_cloze", limit=2, generation=GenerationConfig(max_new_tokens=4, batch_size=2))
    req = adaptation.AdaptRequest(ev, "test-uniform-mix", tuple(str(r.path) for r in refs), data_dir=str(data_dir))
    out = execute(adaptation.OP, req, tiny, Catalog(t2_home / "catalog.duckdb"))
    ids = tuple(sorted(r.id for r in refs))
    assert [(s.expert_ids, s.alphas) for s in out.result.samples] == [(ids, (0.5, 0.5))] * 2


def test_what_a_strategy_is_handed_follows_what_it_declares():
    from t2core.adapt import strategy_class
    from tests.test_adapt import _Header, _Ref

    two_math = [_Ref("svf:b", _Header("math")), _Ref("svf:a", _Header("gsm8k"))]
    assert ExpertSet.of(UniformMix, two_math) == ExpertSet((), ("svf:a", "svf:b"))  # a set needs no categories
    with pytest.raises(ConfigError, match="both serve 'math'"):
        ExpertSet.of(strategy_class("prompt"), two_math)  # one expert per category
    assert ExpertSet.of(strategy_class("prompt"), two_math[:1]) == ExpertSet((("math", "svf:b"),), ("svf:b",))

    class Odd(_Fixed):
        name = "test-odd-view"
        experts = "whatever"

    with pytest.raises(UnknownNameError, match="unknown expert view 'whatever'; known: by-category, set"):
        register_strategy(Odd)


class WeightsSpy(DummySampler):
    """An in-process sampler that records which weights the model has when it is asked to generate."""

    name = "test-weights-spy"
    seen: list[float] = []  # every instance's, in call order

    def __init__(self, loaded=None, **kw) -> None:
        super().__init__(**kw)
        self.loaded = loaded

    def generate(self, conversations, cfg, progress=None, svf=None, rows=None):
        WeightsSpy.seen.append(_fingerprint(self.loaded.model))
        return super().generate(conversations, cfg, progress, svf, rows)


register_sampler("test-weights-spy", WeightsSpy)


def _fingerprint(model) -> float:
    return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


def test_ask_answers_a_mixture_decision_with_the_mixture(tiny, t2_home):
    """`ask` used to apply only a decision of one expert: a mixture answered with the base weights."""
    import torch

    from t2core.svf import materialised
    from t2core.svf.mixture import mixture_policy
    from t2ops import adaptation

    svd, bank, refs = _stored_experts(tiny, t2_home, 2, seed=31)
    WeightsSpy.seen.clear()
    ev = EvalConfig("gsm8k", generation=GenerationConfig(max_new_tokens=4, batch_size=1))
    req = adaptation.AdaptRequest(ev, "test-always-mix", tuple(str(r.path) for r in refs), sampler="test-weights-spy")
    a = adaptation.ask("What is 12 * 7?", req, tiny, max_new_tokens=4)
    ids = sorted(r.id for r in refs)
    assert a.applied == f"mixture 0.3×{ids[0]} + 0.7×{ids[1]}"
    alphas = torch.tensor([0.3 if r.id == ids[0] else 0.7 for r in refs])  # the bank is in the refs' order
    with materialised(tiny.model, svd, mixture_policy(bank, alphas, "mlp")):
        mixed = _fingerprint(tiny.model)
    # the bank's mixture and mixture_policy sum the same float32 terms in different orders: 1.2e-9 apart on an
    # AVX-512 CPU without bf16 units; the base weights are over 1e-6 away (the second assertion)
    assert WeightsSpy.seen == [pytest.approx(mixed, rel=1e-7)] and mixed != pytest.approx(_fingerprint(tiny.model))


def test_a_decision_says_what_it_applies():
    assert Decision("other").applies == "base weights"
    assert Decision("math", ("svf:a",)).applies == "expert svf:a"
    assert Decision("math", ("svf:a", "svf:b"), (0.25, 0.75)).applies == "mixture 0.25×svf:a + 0.75×svf:b"


def test_the_reference_completion_is_the_task_s_own_not_a_branch_on_its_name():
    """NTP trained on `solution + "The answer is: N"` only for a task *named* gsm8k: the same task under
    another name (a fidelity variant) trained without the line its prompt asks for, and a math task with
    no worked solutions trained on empty targets."""
    from t2core.errors import DataError
    from t2core.tasks.base import MathSample, Task
    from t2core.tasks.gsm8k import GSM8K

    class GSM8KVariant(GSM8K):
        name = "test_gsm8k_variant"

    s = MathSample("x/1", "What is 2 + 3?", "5", "2 + 3 = 5")
    assert GSM8KVariant().reference_completion(s) == "2 + 3 = 5\nThe answer is: 5"

    class Bare(Task):
        name, family, category, version, splits, answer_kind = "test_bare_math", "math", "math", "1", ("test",), "number"

        def load(self, split, data_dir):
            raise NotImplementedError

        def messages(self, sample):
            return [{"role": "user", "content": sample.question}]

    assert Bare().reference_completion(MathSample("b/1", "What is 2 + 3?", "5")) == "5"
    with pytest.raises(DataError, match="task 'test_bare_math' has no reference completion for sample 'b/2'"):
        Bare().reference_completion(MathSample("b/2", "?", ""))


def test_the_same_expert_stored_by_two_runs_is_one_expert(tiny, t2_home):
    """Two runs that end at the same z (e.g. z = 1: no step beat the base model) made one content id stored
    twice, and `t2 adapt` refused to pick the default expert ("2 stored experts for ... (svf:c445…, svf:c445…)")."""
    from dataclasses import replace

    from t2core.artifacts import ArtifactStore
    from t2core.experts import FILE, KIND, expert_file, run_expert, store_expert, stored_experts
    from t2core.svf import save_expert
    from t2ops.adaptation import stored_expert_for

    _, _, (ref,) = _stored_experts(tiny, t2_home, 1)
    policy = ref.load()
    store = ArtifactStore()
    header = ref.header.__class__(**{**asdict(ref.header), "origin": "svf-pg"})
    first = store_expert(store, "run-a", policy, header, meta={"task": "gsm8k"})
    # the second run found the same vectors with its own settings and scores (two few-shot searches on
    # different shots that pick the same α): its record is its own, not the first run's (a Dask run and a
    # local run recorded different fitnesses for the same search, by which search stored first)
    own = replace(header, config={**header.config, "shots": 2}, metrics={"fitness_accuracy": 0.25})
    second = store_expert(store, "run-b", policy, own, meta={"task": "gsm8k"})
    assert first.id == second.id and first.path == second.path == expert_file(store, "run-b")
    assert second.header.metrics == {"fitness_accuracy": 0.25} and second.header.config["shots"] == 2
    assert run_expert(store, "run-b").header == second.header and run_expert(store, "run-a").header == first.header
    assert first.header.metrics == header.metrics != second.header.metrics
    assert sorted(p.name for p in (store.root / KIND).glob(f"*/{FILE}")) == [FILE]  # one file
    assert stored_expert_for(tiny.weights_hash, "gsm8k", store=store) == first.id
    # a store written before (the same expert in two folders) still gives one default expert
    store.write(KIND, "run-c", lambda tmp: (save_expert(tmp / FILE, policy, header), None)[1])
    assert len(stored_experts(store)) == 2
    assert stored_expert_for(tiny.weights_hash, "gsm8k", store=store) == first.id


def test_a_task_with_no_data_directory_and_no_hub_source_is_one_clear_line():
    """It was an IndexError (the hub list's first entry named in the location)."""
    from t2core.errors import DataError
    from t2core.tasks.data import load_samples

    with pytest.raises(DataError, match=r"no local data directory was found for toy/x.jsonl .* no hub source"):
        load_samples(None, "toy/x.jsonl", lambda rec, where: rec, hub=[])
