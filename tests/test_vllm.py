"""The `vllm` sampler: a vLLM engine in its own process and environment, experts sent as z vectors.

Marked `vllm`: they need the environment `make vllm-env` creates (skip them with `-m "not vllm"`;
with T2_REQUIRE_VLLM=1, as in CI, a missing environment fails them instead). They run on the
embedded SmolLM2 in fp32, where greedy output must be the `hf` sampler's token for token.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from t2core.errors import ModelError
from t2core.sampling import GenerationConfig, SVFWeights, make_sampler

pytestmark = [pytest.mark.vllm, pytest.mark.real_model]

REPO = Path(__file__).resolve().parent.parent
GREEDY = GenerationConfig(max_new_tokens=40, batch_size=8, dtype="float32")
PROMPTS = ["What is 12 + 30?", "Name three colours.", "Write a Python function that adds two numbers.",
           "Why is the sky blue? Answer in one sentence.", "Janet has 3 apples and buys 5 more. How many now?",
           "Translate 'good morning' into French.", "What is the capital of Italy?", "Count from 1 to 5."]
CONVS = [[{"role": "user", "content": p}] for p in PROMPTS]
# a long shared prefix: the prefix cache holds it between calls, and must not survive a weight update
LONG = [[{"role": "system", "content": " ".join(f"Rule {i}: be brief and exact." for i in range(40))},
         {"role": "user", "content": p}] for p in PROMPTS[:2]]
SHORT = GenerationConfig(max_new_tokens=12, batch_size=8, dtype="float32")


@pytest.fixture(scope="module")
def smol():
    from t2core.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="module")
def svd(smol):
    from t2core.svd import ensure_svd, load_svd

    return load_svd(ensure_svd(smol, "mlp"))


@pytest.fixture(scope="module")
def vllm(smol):
    from t2core.sampling.vllm import stop_servers

    sampler = make_sampler("vllm", loaded=smol)
    yield sampler
    proc = sampler.server("float32").proc
    stop_servers()  # a clean stop: the server answers `close`, shuts its engine down and exits 0
    assert proc.wait(timeout=5) == 0


def _vectors(smol, svd, seed: int, scale: float) -> SVFWeights:
    g = torch.Generator().manual_seed(seed)
    return SVFWeights(smol.weights_hash, {n: 1 + scale * torch.randn(s.shape[0], generator=g)
                                          for n, (_, s, _) in svd.items()})


def _hf(smol, svd, svf, convs, cfg=GREEDY):
    from t2core.svf.apply import materialised_scales

    hf = make_sampler("hf", loaded=smol)
    with materialised_scales(smol.model, svd, svf, dtype=cfg.dtype) if svf else contextlib.nullcontext():
        return hf.generate(convs, cfg)


def _ids(comps):
    return [(c.prompt_ids, c.completion_ids, c.text) for c in comps]


def test_the_server_and_its_client_take_the_cores_in_turns(smol, vllm):
    """The threads rule (t2core/threads.py): the server computes only while this process waits on it, so each
    gets the whole budget, and the server was started with it (bound to those cores)."""
    from t2core import threads

    srv = vllm.server("float32")
    env = dict(kv.split("=", 1) for kv in Path(f"/proc/{srv.pid}/environ").read_bytes().decode().split("\0") if "=" in kv)
    assert env["T2_THREADS"] == env["OMP_NUM_THREADS"] == str(threads.budget())
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == ",".join(map(str, threads.cores()[-threads.budget():]))
    assert torch.get_num_threads() == threads.own() == threads.budget()


def test_vllm_greedy_fp32_equals_hf_with_base_weights_and_with_an_expert(smol, svd, vllm):
    expert = _vectors(smol, svd, seed=0, scale=0.1)
    base_hf, base_vl = _hf(smol, svd, None, CONVS), vllm.generate(CONVS, GREEDY)
    assert _ids(base_vl) == _ids(base_hf)
    assert any(c.completion_ids[-1] == smol.tokenizer.eos_token_id for c in base_vl)  # EOS kept, as hf keeps it
    exp_hf, exp_vl = _hf(smol, svd, expert, CONVS), vllm.generate(CONVS, GREEDY, svf=expert)
    assert _ids(exp_vl) == _ids(exp_hf)
    assert [c.completion_ids for c in exp_vl] != [c.completion_ids for c in base_vl]  # the expert changed answers


def test_candidate_scores_equal_hf(smol, svd, vllm):
    from t2core.svf.apply import materialised_scales

    cands = [("42", "32", "forty"), ("red, green, blue", "one"), ("def add(a, b):", "class Add:")] + \
            [("yes", "no")] * 5
    expert = _vectors(smol, svd, seed=1, scale=0.1)
    hf = make_sampler("hf", loaded=smol)
    for svf in (None, expert):
        with materialised_scales(smol.model, svd, svf) if svf else contextlib.nullcontext():
            mine = hf.choose(CONVS, cands, GREEDY)
        theirs = vllm.choose(CONVS, cands, GREEDY, svf=svf)
        assert [c.choice for c in theirs] == [c.choice for c in mine]
        for a, b in zip(mine, theirs, strict=True):
            assert b.completion_ids == a.completion_ids and b.prompt_ids == a.prompt_ids
            assert max(abs(x - y) for x, y in zip(a.choice_logprobs, b.choice_logprobs, strict=True)) < 1e-4


def test_an_expert_update_takes_effect_before_the_first_token(smol, svd, vllm):
    """Known failure elsewhere: rollouts silently generated from stale weights. Each swap below is
    followed at once by a request whose prompt the prefix cache already holds; every answer must be
    the one hf gives with the weights just sent, and the server must confirm the expert by its hash."""
    from t2core.serving.wire import BASE, expert_id

    a, b = _vectors(smol, svd, seed=2, scale=0.1), _vectors(smol, svd, seed=3, scale=0.1)
    srv = vllm.server("float32")
    for svf in (None, a, b, None):
        assert _ids(vllm.generate(LONG, SHORT, svf=svf)) == _ids(_hf(smol, svd, svf, LONG, SHORT))
        assert srv.active == (expert_id(smol.weights_hash, svf.scale) if svf else BASE)
    with pytest.raises(ModelError, match="request for expert .* while .* is loaded"):  # the server checks it too
        srv.call("generate", prompts=[[1, 2, 3]], max_tokens=2, temperature=0.0, top_p=1.0, seed=0,
                 stop_ids=[2], seeds=[0], expect=expert_id(smol.weights_hash, a.scale))  # not the one loaded


def test_each_conversation_its_own_expert_is_served_grouped_by_expert(smol, svd, vllm):
    from t2core.sampling.base import RowExperts
    from t2core.svf.bank import ExpertBank, one_hot

    experts = [_vectors(smol, svd, seed=4, scale=0.1), _vectors(smol, svd, seed=5, scale=0.1)]
    bank = ExpertBank.of(experts)
    pick = [0, 1, 1, 0, 1, 0, 0, 1]
    together = vllm.generate(CONVS, GREEDY, rows=RowExperts(bank, one_hot(pick, 2)))
    for k, svf in enumerate(experts):
        idx = [i for i, p in enumerate(pick) if p == k]
        alone = vllm.generate([CONVS[i] for i in idx], GREEDY, svf=svf)
        assert _ids([together[i] for i in idx]) == _ids(alone)


def test_reinforce_through_vllm_tracks_hf(smol, svd, vllm, data_dir):
    """Greedy rollouts: the same answers, so the same rewards, losses and z, step for step. (Sampled
    rollouts use vLLM's own seeded generator: reproducible, but other draws than hf's.)"""
    from t2core.training.config import RLConfig
    from t2core.training.reinforce import ReinforceTrainer

    cfg = RLConfig(task="gsm8k", steps=2, batch_size=3, max_new_tokens=24, temperature=0.0, lr=0.05,
                   valid_every=100, seed=7)
    curves, states = [], []
    for sampler in (make_sampler("hf", loaded=smol), vllm):
        tr = ReinforceTrainer(smol, svd, cfg, data_dir=data_dir, sampler=sampler)
        curves.append([(c.mean_reward, c.loss, c.tokens) for c in (tr.step(1), tr.step(2))])
        states.append(tr.policy.raw_state())
        tr.adapter.close()
    assert curves[0] == curves[1]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert any(not torch.equal(v, torch.zeros_like(v)) for v in states[0].values())


def _state(pid: int) -> str | None:
    """The process's state letter, None once it is gone (a zombie counts as gone: it runs nothing)."""
    try:
        s = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    state = s.rsplit(")", 1)[1].split()[0]
    return None if state in ("Z", "X") else state


def _client(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


CLIENT = """
import time
from t2core.models import load_model
from t2core.sampling import make_sampler
srv = make_sampler("vllm", loaded=load_model("smollm2-135m")).server("float32")
print(srv.pid, flush=True)
{then}
"""


@pytest.mark.parametrize("end", ["kill -9", "exception"])
def test_no_server_outlives_its_client(end):
    """A client killed with SIGKILL (no cleanup runs) or crashing with an exception (atexit runs) leaves
    no server behind. (A clean stop, exit code 0, is checked when the `vllm` fixture ends.)"""
    then = {"kill -9": "time.sleep(600)", "exception": "raise RuntimeError('client crashed')"}[end]
    client = _client(CLIENT.format(then=then))
    try:
        pid = int(client.stdout.readline())
        if end == "kill -9":
            assert _state(pid) is not None
            client.send_signal(signal.SIGKILL)
        client.wait(timeout=120)
        deadline = time.monotonic() + 20
        while _state(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _state(pid) is None, f"vLLM server {pid} outlived its client ({end})"
    finally:
        client.kill()
        client.wait()
