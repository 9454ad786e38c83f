"""`t2 api --backend vllm`: t2 decides, vLLM's own OpenAI server answers (paper §3.3 applied to traffic).

Why a second front: with `--backend t2` one worker thread both decides and generates, batch by batch. Here the
answer comes from vLLM's OpenAI server (t2core/serving/vllm_openai.py), which batches every request it holds
continuously and streams tokens as they are made. t2 keeps what vLLM cannot do: pass 1 (`Responder.decide`,
in the same worker and queue as the t2 backend, batched over a short window), and the choice of weights,
given to vLLM as the name of a LoRA adapter: an expert's best rank-r truncation, or a mixture's (SVF is linear
in z, so Σ αₖ zₖ is one adapter), written once and loaded into the server the first time it is needed.

A request is checked as the t2 backend checks it (`parse_request`: the same errors), then sent on to vLLM with
its `model` replaced by the adapter's name (or `base`); any other OpenAI field the client sent (`stop`, `seed`,
`logprobs`, ...) goes along, and vLLM's own refusals come back as they are. The answer comes back with the
`model` t2 names (`t2-auto:mbpp`, an expert's name, `base`), in every streamed chunk too, and the headers
`x-t2-expert` (what was applied, in words), `x-t2-pass1-ms`, `x-t2-pass2-ms` (streamed: up to the response's
start). At most `max_queue` requests are in t2's hands at once (waiting for pass 1 or for vLLM); one more is a 429.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time

from fastapi import Request as HttpRequest  # noqa: TC002 - FastAPI reads the annotation at run time
from fastapi.responses import JSONResponse, StreamingResponse

from t2api.server import ApiError, ApiSettings, Worker, _Job, _wait, api_app, parse_request
from t2core.adapt.dispatch import Decision
from t2core.serving.vllm_openai import BASE_NAME, VLLMOpenAIServer
from t2ops.respond import Responder


class Routes:
    """Which adapter of vLLM's server answers a decision: written and loaded on first use, then reused."""

    def __init__(self, responder: Responder, adapters) -> None:
        """`adapters`: a `t2core.sampling.vllm_lora.LoraAdapters` of the responder's model."""
        self.responder, self.adapters = responder, adapters
        self.server: VLLMOpenAIServer | None = None
        self._names: dict[tuple, str] = {}  # (expert ids, alphas) -> adapter name (or base)
        self._lock = threading.Lock()

    def prepared(self) -> dict[str, str]:
        """{adapter name: directory} of every expert a request may name, written now: the server starts with
        them (`--lora-modules`). Experts at z = 1 have none: they answer on the base weights."""
        out = {}
        for eid in dict.fromkeys(self.responder.names.values()):
            made = self.adapters.adapter(self.responder.vectors(Decision("asked", (eid,))))
            if made is not None:
                out[made[0]] = made[1]
                self._names[(eid,), ()] = made[0]
        return out

    def model_for(self, decision: Decision) -> str:
        """The name vLLM's server serves `decision`'s weights under (a mixture's adapter is made here)."""
        key = (decision.expert_ids, decision.alphas)
        if not decision.expert_ids:
            return BASE_NAME
        with self._lock:
            name = self._names.get(key)
        if name is None:
            made = self.adapters.adapter(self.responder.vectors(decision))
            name = BASE_NAME if made is None else made[0]
            if made is not None:
                self.server.load_adapter(*made)
            with self._lock:
                self._names[key] = name
        return name


def create_forward_app(responder: Responder, routes: Routes, settings: ApiSettings | None = None):
    """The FastAPI application: pass 1 on `responder`'s worker, pass 2 on `routes.server` (vLLM's)."""
    import httpx

    settings = settings or ApiSettings()
    server = routes.server
    def pass1(requests, stream=None) -> list[tuple[Decision, float]]:
        decisions, seconds = responder.decide(requests)
        return [(d, seconds) for d in decisions]

    worker = Worker(responder, settings, answer=pass1)
    counter = copy.deepcopy(responder.loaded.tokenizer)
    state = {"in_hand": 0, "served": 0}
    client = httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(settings.timeout_s, connect=10.0))

    async def stop():
        worker.stop()
        await client.aclose()

    app = api_app("t2 api (vLLM backend)", __doc__, responder, stop)
    app.state.worker, app.state.routes = worker, routes

    @app.get("/health")
    async def health():
        ok = server.alive()
        body = {"status": "ok" if ok else "vllm server down", "backend": "vllm", "vllm": server.url,
                "model": responder.loaded.alias, "strategy": responder.req.strategy, "models": responder.models(),
                "waiting": worker.jobs.qsize(), "in_hand": state["in_hand"], "served": state["served"]}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.post("/v1/chat/completions")
    async def chat(http: HttpRequest):
        raw = await http.body()
        req, streamed = parse_request(raw, responder, settings, counter)
        if state["in_hand"] >= settings.max_queue:
            raise ApiError(429, f"{settings.max_queue} requests are in hand already; retry later.",
                           "rate_limit_error", code="queue_full")
        state["in_hand"] += 1
        release = True
        try:
            decision, pass1 = await _wait(worker.submit(_Job(req)), settings)
            target = await asyncio.to_thread(routes.model_for, decision)
            name = responder.name(req.model, decision)
            body = {**json.loads(raw), "model": target}
            t0 = time.perf_counter()
            if not streamed:
                try:
                    r = await client.post("/v1/chat/completions", json=body)
                except httpx.TimeoutException:
                    raise ApiError(504, f"vLLM did not answer within {settings.timeout_s:.0f} s.", "timeout",
                                   code="timeout") from None
                except httpx.HTTPError as e:
                    raise ApiError(502, f"vLLM's server cannot be reached ({e}); log: {server.log_path}",
                                   "server_error") from None
                headers = _headers(decision, pass1, time.perf_counter() - t0)
                out = r.json()
                if r.status_code == 200:
                    out["model"] = name
                    state["served"] += 1
                return JSONResponse(out, status_code=r.status_code, headers=headers)
            try:
                resp = await client.send(client.build_request("POST", "/v1/chat/completions", json=body), stream=True)
            except httpx.HTTPError as e:
                raise ApiError(502, f"vLLM's server cannot be reached ({e}); log: {server.log_path}",
                               "server_error") from None
            headers = _headers(decision, pass1, time.perf_counter() - t0)
            if resp.status_code != 200:
                content = await resp.aread()
                await resp.aclose()
                return JSONResponse(json.loads(content or b"{}"), status_code=resp.status_code, headers=headers)
            release = False  # the stream releases its place when it ends

            async def events():
                try:
                    async for line in resp.aiter_lines():
                        if not line:
                            continue
                        if line.startswith("data: ") and line != "data: [DONE]":
                            chunk = json.loads(line[len("data: "):])
                            if "model" in chunk:
                                chunk["model"] = name
                            line = "data: " + json.dumps(chunk)
                        yield line + "\n\n"
                    state["served"] += 1
                finally:
                    await resp.aclose()
                    state["in_hand"] -= 1

            return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
        finally:
            if release:
                state["in_hand"] -= 1

    return app


def _headers(decision: Decision, pass1_s: float, pass2_s: float) -> dict[str, str]:
    return {"x-t2-expert": decision.applies, "x-t2-pass1-ms": f"{pass1_s * 1000:.0f}",
            "x-t2-pass2-ms": f"{pass2_s * 1000:.0f}"}
