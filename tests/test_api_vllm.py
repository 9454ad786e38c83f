"""`t2 api --backend vllm`: t2 decides (pass 1), vLLM's own OpenAI server answers with the experts as LoRA adapters.

Marked `vllm` (the environment `make vllm-env` creates) and `slow` (vLLM's server starts in a minute or more on
2 cores; `.ci/run` runs it). On the embedded SmolLM2 in fp32 with the tolerance at 0: experts whose change has
rank 48 per matrix are exact as adapters of rank 48 (slots of 64), so vLLM's greedy answers must be the `hf`
sampler's with the expert materialised, token for token, whether asked by the expert's name, as a mixture
(an adapter loaded while the server runs), streamed or not.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict

import pytest
import torch

from t2core.sampling import GenerationConfig, SVFWeights, make_sampler

pytestmark = [pytest.mark.vllm, pytest.mark.real_model, pytest.mark.slow]

CHAT = [{"role": "user", "content": "Write a Python function that returns the sum of a list."}]
GREEDY = GenerationConfig(max_new_tokens=16, batch_size=1, dtype="float32")


@pytest.fixture(scope="module")
def smol():
    from t2core.models import load_model

    return load_model("smollm2-135m")


def _low_rank(svd, weights_hash: str, seed: int, k: int = 48) -> SVFWeights:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, (_, s, _) in svd.items():
        m = torch.ones(s.shape[0])
        m[torch.randperm(s.shape[0], generator=g)[:k]] = 1 + 0.6 * torch.randn(k, generator=g)
        out[n] = m
    return SVFWeights(weights_hash, out)


def _hf(smol, svd, svf: SVFWeights | None) -> str:
    from t2core.svf.apply import materialised_scales

    hf = make_sampler("hf", loaded=smol)
    if svf is None:
        return hf.generate([CHAT], GREEDY)[0].text
    with materialised_scales(smol.model, svd, svf, dtype="float32"):
        return hf.generate([CHAT], GREEDY)[0].text


@pytest.fixture(scope="module")
def served(smol, data_dir, tmp_path_factory):
    """t2's front on a free port, vLLM's OpenAI server behind it (slots of rank 64), two stored experts; one
    T2_HOME for the module (its SVD made once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("T2_HOME", str(tmp_path_factory.mktemp("t2home-api-vllm")))
        mp.delenv("T2_CATALOG", raising=False)
        mp.setattr("t2core.sampling.vllm_lora.TOL", 0.0)  # whole rank: the adapters are the experts
        from t2core import precision

        # fp32 on every machine: greedy answers compared token for token
        precision.reset_for_tests(precision.Choice("float32", "the test asks for fp32", "cpu", "test", False))
        try:
            yield from _served(smol)
        finally:
            precision.reset_for_tests(None)


def _served(smol):
    import uvicorn

    from t2api.launch import ServeRequest, responder_for, vllm_app
    from t2api.server import ApiSettings
    from t2core.artifacts import ArtifactStore
    from t2core.experts import store_expert
    from t2core.profiles import get_profile
    from t2core.serving.vllm_openai import free_port
    from t2core.svd import ensure_svd, load_svd
    from t2core.svf import ExpertHeader, SVFConfig, SVFPolicy, ranks_of

    svd = load_svd(ensure_svd(smol, "mlp"))
    vecs, ids = {}, {}
    for task, seed in (("gsm8k", 7), ("mbpp", 8)):
        vecs[task] = _low_rank(svd, smol.weights_hash, seed)
        p = SVFPolicy(ranks_of(svd))
        p.load_raw_state(vecs[task].scale)
        ids[task] = store_expert(ArtifactStore(), f"run-{task}", p, ExpertHeader(
            base_weights_hash=smol.weights_hash, model=smol.alias, task=task, svf=asdict(SVFConfig()),
            ranks={n: int(s.shape[0]) for n, (_, s, _) in svd.items()}, origin="svf-pg"), meta={"task": task}).id
    port = free_port()
    req = ServeRequest("smol", experts=tuple(ids.values()), port=port, backend="vllm", lora_rank=64)
    responder = responder_for(req, get_profile("smol"), smol)
    vllm, app = vllm_app(req, responder, ApiSettings(max_queue=4, max_batch=4), lambda _: None)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield {"url": f"http://127.0.0.1:{port}/v1", "ids": ids, "vecs": vecs, "svd": svd, "vllm": vllm,
               "routes": app.state.routes}
    finally:
        server.should_exit = True
        vllm.close()
    assert vllm.proc.poll() is not None and vllm.dtype == "float32"
    with pytest.raises(ProcessLookupError):
        os.killpg(vllm.pid, 0)  # the server's whole group (its engine process too) is gone


def test_vllm_s_own_server_answers_as_the_exact_experts_streamed_or_not(smol, served):
    import httpx
    import openai

    from t2core.adapt.dispatch import Decision
    from t2core.svf.bank import ExpertBank

    client = openai.OpenAI(base_url=served["url"], api_key="unused", max_retries=0)
    assert {m.id for m in client.models.list().data} >= {"t2-auto", "base", "gsm8k", "mbpp"}
    raw = client.chat.completions.with_raw_response.create(model="mbpp", messages=CHAT, max_tokens=16,
                                                            temperature=0)
    r = raw.parse()
    want_mbpp = _hf(smol, served["svd"], served["vecs"]["mbpp"])
    assert r.model == "mbpp" and raw.headers["x-t2-expert"] == f"expert {served['ids']['mbpp']}"
    assert r.choices[0].message.content == want_mbpp
    base = client.chat.completions.create(model="base", messages=CHAT, max_tokens=16, temperature=0)
    assert base.choices[0].message.content == _hf(smol, served["svd"], None) != want_mbpp

    # streamed: token by token from vLLM, every chunk named by t2; the same text as the whole answer
    pieces, names = [], set()
    for chunk in client.chat.completions.create(model="mbpp", messages=CHAT, max_tokens=16, temperature=0,
                                                stream=True):
        names.add(chunk.model)
        pieces += [c.delta.content or "" for c in chunk.choices]
    assert "".join(pieces) == want_mbpp and names == {"mbpp"} and sum(bool(p) for p in pieces) > 1

    auto = client.chat.completions.with_raw_response.create(model="t2-auto", messages=CHAT, max_tokens=16,
                                                             temperature=0)
    assert auto.parse().model.startswith("t2-auto:") and int(auto.headers["x-t2-pass1-ms"]) >= 0

    # a mixture: its adapter is written and loaded into the running server on first use (SVF is linear in z)
    ids, vecs, vllm, routes = served["ids"], served["vecs"], served["vllm"], served["routes"]
    mix = Decision("asked", (ids["gsm8k"], ids["mbpp"]), (0.3, 0.7))
    before = set(vllm.adapters)
    name = routes.model_for(mix)
    assert set(vllm.adapters) - before == {name} and routes.model_for(mix) == name  # loaded once
    mixture = ExpertBank.of([vecs["gsm8k"], vecs["mbpp"]]).mixture(torch.tensor([0.3, 0.7]))
    got = httpx.post(f"{vllm.url}/v1/chat/completions", json={"model": name, "messages": CHAT, "max_tokens": 16,
                                                              "temperature": 0}, timeout=300).json()
    assert got["choices"][0]["message"]["content"] == _hf(smol, served["svd"], mixture)


def test_concurrent_requests_are_answered_or_refused_and_bad_ones_are_error_objects(served):
    import httpx

    url = served["url"]
    codes: list[int] = []

    def one():
        r = httpx.post(f"{url}/chat/completions", json={"model": "t2-auto", "messages": CHAT, "max_tokens": 8},
                       timeout=600)
        codes.append(r.status_code)
        assert (r.status_code == 200 and r.json()["model"].startswith("t2-auto:")) or \
            (r.status_code == 429 and r.json()["error"]["code"] == "queue_full")

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(codes) == 20 and 200 in codes and set(codes) <= {200, 429}
    bad = httpx.post(f"{url}/chat/completions", content=b"{not json", timeout=30)
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]["message"]
    unknown = httpx.post(f"{url}/chat/completions", json={"model": "nope", "messages": CHAT}, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    # vLLM's own refusal comes back as it is (a field t2 does not check)
    refused = httpx.post(f"{url}/chat/completions", json={"model": "base", "messages": CHAT, "max_tokens": 8,
                                                          "logprobs": True, "top_logprobs": 10**6}, timeout=60)
    assert refused.status_code == 400 and "logprobs" in refused.text
    assert httpx.get(url.removesuffix("/v1") + "/health", timeout=30).json()["backend"] == "vllm"
