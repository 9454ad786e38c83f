"""The `vllm-lora` sampler: each expert a LoRA adapter that vLLM applies per request, several in one batch.

Marked `vllm` (the environment `make vllm-env` creates). On the embedded SmolLM2 in fp32, with the tolerance
at 0: experts whose change has rank 48 per matrix are exact as rank-48 adapters (the truncation keeps every
nonzero |sᵢ(mᵢ − 1)|), so greedy answers must be the `hf` sampler's with the expert materialised, token for token.
"""

from __future__ import annotations

import pytest
import torch

from t2core.sampling import GenerationConfig, SVFWeights, make_sampler

pytestmark = [pytest.mark.vllm, pytest.mark.real_model]

GREEDY = GenerationConfig(max_new_tokens=24, batch_size=8, dtype="float32")
PROMPTS = ["What is 12 + 30?", "Name three colours.", "Write a Python function that adds two numbers.",
           "What is the capital of Italy?"]
CONVS = [[{"role": "user", "content": p}] for p in PROMPTS]


@pytest.fixture(scope="module")
def smol():
    from t2core.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="module")
def svd(smol):
    from t2core.svd import ensure_svd, load_svd

    return load_svd(ensure_svd(smol, "mlp"))


@pytest.fixture(scope="module")
def lora(smol, tmp_path_factory):
    from t2core.sampling.vllm import stop_servers

    sampler = make_sampler("vllm-lora", loaded=smol)
    yield sampler
    stop_servers()


def _low_rank(smol, svd, seed: int, k: int = 48) -> SVFWeights:
    """Multipliers that differ from 1 in k entries per matrix: ΔW of rank k, exact as a rank-k LoRA."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, (_, s, _) in svd.items():
        m = torch.ones(s.shape[0])
        idx = torch.randperm(s.shape[0], generator=g)[:k]
        m[idx] = 1 + 0.6 * torch.randn(k, generator=g)
        out[n] = m
    return SVFWeights(smol.weights_hash, out)


def _hf(smol, svd, svf, convs):
    from t2core.svf.apply import materialised_scales

    hf = make_sampler("hf", loaded=smol)
    with materialised_scales(smol.model, svd, svf, dtype="float32"):
        return hf.generate(convs, GREEDY)


@pytest.mark.slow  # a vLLM server with LoRA slots starts: minutes on 2 cores; run by .ci/run
def test_experts_as_adapters_in_one_call_answer_as_the_exact_experts(smol, svd, lora, t2_home, monkeypatch):
    from t2core.sampling import RowExperts

    monkeypatch.setattr("t2core.sampling.vllm_lora.TOL", 0.0)  # whole rank: the adapters are the experts
    from t2core.svf.bank import ExpertBank, one_hot

    a, b = _low_rank(smol, svd, 1), _low_rank(smol, svd, 2)
    ones = SVFWeights(smol.weights_hash, {n: torch.ones_like(m) for n, m in a.scale.items()})
    rows = RowExperts(ExpertBank.of([a, b, ones]), one_hot([0, 1, 2, 0], 3))
    srv = lora.server("float32")
    calls = []
    real = srv.call
    monkeypatch.setattr(srv, "call", lambda op, **kw: (calls.append((op, kw.get("loras"))), real(op, **kw))[1])
    got = lora.generate(CONVS, GREEDY, rows=rows)
    gens = [c for c in calls if c[0] == "generate"]
    assert len(gens) == 1  # three experts (one of them the base weights), one call: no swap, no regrouping
    names = [x[0] if x else None for x in gens[0][1]]
    assert names[0] == names[3] and None not in (names[0], names[1]) and names[0] != names[1] and names[2] is None
    assert all(c[0] != "set_expert" for c in calls)  # the server's weights stayed the base ones
    want = {0: _hf(smol, svd, a, [CONVS[0], CONVS[3]]), 1: _hf(smol, svd, b, [CONVS[1]])}
    base = make_sampler("hf", loaded=smol).generate([CONVS[2]], GREEDY)
    assert got[0].completion_ids == want[0][0].completion_ids
    assert got[3].completion_ids == want[0][1].completion_ids
    assert got[1].completion_ids == want[1][0].completion_ids
    assert got[2].completion_ids == base[0].completion_ids
    assert got[0].completion_ids != got[2].completion_ids  # the expert changed the answer


def test_an_adapter_is_written_once_verified_when_reused_and_a_damaged_one_is_named(smol, svd, lora, t2_home,
                                                                                     monkeypatch):
    from t2core.errors import ArtifactError
    from t2core.export.package import read_package

    monkeypatch.setattr("t2core.sampling.vllm_lora.TOL", 0.0)

    a = _low_rank(smol, svd, 3)
    name, path = lora.adapter(a)
    pkg = read_package(path, kind="peft-lora")
    assert pkg.manifest["lora"]["rank"] == 48 and pkg.manifest["lora"]["error"] < 1e-6
    weights = next(p for p in pkg.path.iterdir() if p.suffix == ".safetensors")
    stamp = weights.stat().st_mtime_ns
    assert lora.adapter(a) == [name, path] and weights.stat().st_mtime_ns == stamp  # reused, not rewritten
    assert lora.adapter(None) is None
    assert lora.adapter(SVFWeights(smol.weights_hash, {n: torch.ones_like(m) for n, m in a.scale.items()})) is None
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    lora.adapters._verified.clear()  # what a new process finds: the adapter checked before it is served
    with pytest.raises(ArtifactError, match=f"delete {path}"):
        lora.adapter(a)
    other = SVFWeights("0" * 64, dict(a.scale))
    with pytest.raises(ArtifactError, match="sent to the LoRA adapters"):
        lora.adapter(other)


def test_runs_of_the_lora_sampler_have_their_own_ids():
    from t2core.sampling.base import run_backend

    assert run_backend("vllm-lora").startswith("vllm-lora-tol0.05/") and run_backend("vllm").startswith("vllm/")


@pytest.mark.slow  # a vLLM server with LoRA slots starts: minutes on 2 cores; run by .ci/run
def test_t2_api_on_the_lora_sampler_answers_requests_for_different_experts_in_one_generation(smol, lora, t2_home,
                                                                                             data_dir, monkeypatch):
    """`t2 api --sampler vllm-lora`: a batch asking for base, two experts and t2-auto is answered by one
    generation on the server after pass 1 in t2's process (the `hf` and `vllm` samplers answer one group per
    expert); over HTTP, with the openai client, an expert's answer is the one the same server gives directly,
    and the header names it."""
    openai = pytest.importorskip("openai")
    import socket
    import threading
    import time
    from dataclasses import asdict

    import uvicorn

    from t2api.server import ApiSettings, create_app
    from t2core.artifacts import ArtifactStore
    from t2core.experts import store_expert
    from t2core.profiles import get_profile
    from t2core.svf import ExpertHeader, SVFConfig, SVFPolicy, ranks_of
    from t2ops.adaptation import adapt_request
    from t2ops.respond import Request, Responder
    from tests.conftest import random_experts

    svd, _, _ = random_experts(smol, 1, scale=0.3, seed=7)
    policies = []
    for seed in (7, 8):  # changes of rank 48: small adapters, quick to write
        p = SVFPolicy(ranks_of(svd))
        p.load_raw_state(_low_rank(smol, svd, seed).scale)
        policies.append(p)
    ranks = {n: int(s.shape[0]) for n, (_, s, _) in svd.items()}
    ids = {task: store_expert(ArtifactStore(), f"run-{task}", p, ExpertHeader(
        base_weights_hash=smol.weights_hash, model=smol.alias, task=task, svf=asdict(SVFConfig()), ranks=ranks,
        origin="svf-pg"), meta={"task": task}).id for task, p in zip(("gsm8k", "mbpp"), policies, strict=True)}
    req = adapt_request(get_profile("smol"), "prompt", "", None, ",".join(ids.values()), None, None, None, "train",
                        None, "vllm-lora", None, smol.weights_hash)
    responder = Responder(req, smol, ids)
    srv = responder.sampler.server(req.eval.generation.dtype)
    calls = []
    real = srv.call
    monkeypatch.setattr(srv, "call", lambda op, **kw: (calls.append(op), real(op, **kw))[1])
    chat = ({"role": "user", "content": "Write a Python function that returns the sum of a list."},)
    replies = responder.respond([Request(chat, m, 16) for m in ("base", "gsm8k", "mbpp", "t2-auto")])
    assert calls == ["generate"]  # pass 1 in t2's process (hf), then one pass 2 for all four: no swap
    assert [r.model for r in replies[:3]] == ["base", "gsm8k", "mbpp"] and replies[3].model.startswith("t2-auto:")
    assert replies[1].applies == f"expert {ids['gsm8k']}" and replies[0].applies == "base weights"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(responder, ApiSettings(max_batch=4)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="mbpp", messages=[dict(chat[0])], max_tokens=16)
        r = raw.parse()
        assert r.model == "mbpp" and r.choices[0].message.content == replies[2].text
        assert raw.headers["x-t2-expert"] == f"expert {ids['mbpp']}"
    finally:
        server.should_exit = True
