"""`t2 api` (issue 37): the OpenAI client against the server on the tiny model, for `t2-auto` (two passes),
an expert by name and `base`, streamed and not; the answers equal what the same weights generate directly;
concurrent requests are all answered or refused with 429; bad requests are OpenAI error objects."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import pytest

openai = pytest.importorskip("openai")

TASKS = ("gsm8k", "mbpp", "arc_easy_cloze")


def _store_experts(tiny) -> dict[str, str]:
    """One random SVF expert per training task of the tiny profile, stored as `t2 train` stores them."""
    from t2core.artifacts import ArtifactStore
    from t2core.experts import store_expert
    from t2core.svf import ExpertHeader, SVFConfig
    from tests.conftest import random_experts

    svd, policies, _ = random_experts(tiny, len(TASKS), scale=0.5, seed=5)
    ranks = {n: int(s.shape[0]) for n, (_, s, _) in svd.items()}
    out = {}
    for task, p in zip(TASKS, policies, strict=True):
        header = ExpertHeader(base_weights_hash=tiny.weights_hash, model=tiny.alias, task=task,
                              svf=asdict(SVFConfig()), ranks=ranks, origin="svf-pg")
        out[task] = store_expert(ArtifactStore(), f"run-{task}", p, header, meta={"task": task}).id
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(t2_home, tiny, data_dir):
    """(client, responder, experts): the tiny profile's server on a free port, in this process."""
    import uvicorn

    from t2api.server import ApiSettings, create_app
    from t2core.profiles import get_profile
    from t2ops.adaptation import adapt_request
    from t2ops.respond import Responder

    experts = _store_experts(tiny)
    prof = get_profile("tiny")
    req = adapt_request(prof, "prompt", "", None, None, None, None, None, "train", None, "hf", None,
                         tiny.weights_hash)
    responder = Responder(req, tiny, {t: experts[t] for t in TASKS})
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(responder, ApiSettings(max_queue=4, max_batch=4)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    yield client, responder, experts
    server.should_exit = True
    thread.join(timeout=10)


def _direct(responder, model: str, question: str, max_tokens: int) -> str:
    from t2ops.respond import Request

    (r,) = responder.respond([Request(({"role": "user", "content": question},), model, max_tokens)])
    return r.text


def test_the_openai_client_gets_auto_expert_and_base_answers_and_which_expert_answered(served):
    client, responder, experts = served
    listed = {m.id for m in client.models.list().data}
    assert {"t2-auto", "base", *TASKS, *experts.values()} <= listed
    q = "What is 12 * 7?"
    for model in ("base", "mbpp", experts["gsm8k"]):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": q}], max_tokens=8)
        r = raw.parse()
        assert r.model == model and r.choices[0].message.content == _direct(responder, model, q, 8)
        assert raw.headers["x-t2-expert"] == ("base weights" if model == "base" else
                                              f"expert {experts.get(model, model)}")
        assert r.usage.completion_tokens >= 1
    auto = client.chat.completions.with_raw_response.create(
        model="t2-auto", messages=[{"role": "user", "content": q}], max_tokens=8)
    r = auto.parse()
    assert r.model.startswith("t2-auto:") and auto.headers["x-t2-expert"]
    answered = r.model.split(":", 1)[1]  # the expert's task, or base: it must give the same text
    assert r.choices[0].message.content == _direct(responder, answered if answered != "base" else "base", q, 8)


def test_a_streamed_answer_is_the_same_text_in_pieces(served):
    client, responder, _ = served
    q = "Write a function that adds two numbers."
    pieces, last = [], None
    for chunk in client.chat.completions.create(model="mbpp", messages=[{"role": "user", "content": q}],
                                                max_tokens=12, stream=True):
        last = chunk
        if chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert len(pieces) > 1 and "".join(pieces) == _direct(responder, "mbpp", q, 12)
    assert last.choices[0].finish_reason in ("stop", "length") and last.model == "mbpp"


def test_twenty_concurrent_requests_are_answered_or_refused_with_429(served):
    client, _, _ = served

    def one(i: int) -> str:
        try:
            r = client.chat.completions.create(model="t2-auto" if i % 2 else "base", max_tokens=4,
                                               messages=[{"role": "user", "content": f"Question {i}?"}])
            return "ok" if r.choices[0].message.content is not None else "empty"
        except openai.RateLimitError:
            return "429"

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(one, range(20)))
    assert set(outcomes) <= {"ok", "429"} and outcomes.count("ok") >= 4, outcomes


def test_bad_requests_are_openai_error_objects_and_the_server_goes_on(served):
    client, _, _ = served
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="base", messages=[])
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model="base", messages=[{"role": "user", "content": "hi"}], max_tokens=0)
    with pytest.raises(openai.BadRequestError, match="more than"):
        client.chat.completions.create(model="base", messages=[{"role": "user", "content": "word " * 5000}])
    import httpx

    raw = httpx.post(str(client.base_url) + "chat/completions", content=b"{not json")
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    ok = client.chat.completions.create(model="base", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert ok.choices[0].message.content is not None  # still serving


def test_the_vllm_backend_ends_its_server_s_whole_process_group():
    """vLLM's OpenAI server starts an engine process that outlives it when the server exits (`--backend vllm`):
    closing ends every process of the group, orphans included, and returns only once the group is empty."""
    import os
    import subprocess

    from t2core.serving.vllm_env import end_group

    leader = subprocess.Popen(["bash", "-c", "sleep 1000 & exit 0"], start_new_session=True)
    leader.wait()
    os.killpg(leader.pid, 0)  # the orphaned sleep still holds the group
    end_group(leader.pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(leader.pid, 0)
