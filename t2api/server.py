"""`t2 api`: an OpenAI-compatible HTTP server whose model adapts itself to each request (paper §3.3).

`POST /v1/chat/completions` with `model` = `t2-auto` runs pass 1 (the profile's strategy picks an expert or
a mixture for the question) and pass 2 (the answer with it); an expert's name or id, or `base`, answers with
those weights and no pass 1. The response's `model` says what answered (`t2-auto:mbpp`, `t2-auto:base`) and
the `x-t2-expert` header what was applied, in words. `GET /v1/models` lists what may be asked for,
`GET /health` the server's state.

How requests share the one model: a worker thread takes them from a bounded queue, waits a short window
for more, and answers them together (`t2ops.respond.Responder.respond`: one pass 1 over the batch, one
generation per group answered with the same weights). A full queue is a 429, a request that waits past
`timeout_s` a 504, a bad body or an unknown model an OpenAI-style error object: no request stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi import Request as HttpRequest  # noqa: TC002 - FastAPI reads the annotation at run time
from fastapi.responses import JSONResponse, StreamingResponse

from t2core.errors import T2Error
from t2ops.respond import Request, Responder


@dataclass(frozen=True)
class ApiSettings:
    max_queue: int = 64  # requests waiting; one more is refused with 429
    max_batch: int = 8  # requests answered together
    batch_window_s: float = 0.02  # how long the worker waits for more requests to batch
    timeout_s: float = 600.0  # a request not answered by then gets 504
    max_tokens: int = 1024  # the most a request may ask for
    max_prompt_tokens: int = 4096  # a longer chat is refused (400), not truncated

    def __post_init__(self) -> None:
        from t2core.errors import ConfigError

        for name in ("max_queue", "max_batch", "max_tokens", "max_prompt_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.batch_window_s < 0 or self.timeout_s <= 0:
            raise ConfigError(f"batch_window_s={self.batch_window_s} must be >= 0 and timeout_s={self.timeout_s} > 0.")


class ApiError(Exception):
    """An error the client caused or meets, as OpenAI reports it: status, message, type, param, code."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.param, self.code = status, kind, param, code

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class _Job:
    request: Request
    done: Future = field(default_factory=Future)
    on_piece: object = None  # (text) -> None, called from the worker thread, for a streamed request
    queued_at: float = field(default_factory=time.monotonic)


class Worker:
    """The one thread that uses the model: batches of queued jobs through `answer` (`Responder.respond` by
    default; `t2 api --backend vllm` gives pass 1 alone, `Responder.decide`, t2api/forward.py)."""

    def __init__(self, responder: Responder, settings: ApiSettings, answer=None) -> None:
        self.responder, self.settings = responder, settings
        self.answer = answer or responder.respond  # (requests, stream=) -> one result per request
        self.jobs: queue.Queue[_Job] = queue.Queue(maxsize=settings.max_queue)
        self.served = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="t2-api-worker", daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> _Job:
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise ApiError(429, f"{self.settings.max_queue} requests are waiting already; retry later.",
                           "rate_limit_error", code="queue_full") from None
        return job

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.settings.batch_window_s
            while len(batch) < self.settings.max_batch:
                try:
                    batch.append(self.jobs.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            live = [j for j in batch if not j.done.cancelled()]
            if live:
                self._answer(live)

    def _answer(self, batch: list[_Job]) -> None:
        def piece(i: int, text: str) -> None:
            if batch[i].on_piece is not None:
                batch[i].on_piece(text)

        try:
            replies = self.answer([j.request for j in batch], stream=piece)
        except T2Error as e:
            for j in batch:
                _settle(j.done, error=ApiError(400, str(e)))
            return
        except Exception as e:  # noqa: BLE001 - one failed batch fails its requests, not the server
            for j in batch:
                _settle(j.done, error=ApiError(500, f"{type(e).__name__}: {e}", "server_error"))
            return
        self.served += len(batch)
        for j, r in zip(batch, replies, strict=True):
            _settle(j.done, result=r)


def _settle(done: Future, result=None, error: Exception | None = None) -> None:
    """A job's outcome, unless its client gave up (a timed-out request's future is cancelled)."""
    from concurrent.futures import InvalidStateError

    try:
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)
    except InvalidStateError:
        pass


def parse_request(body: bytes, responder: Responder, settings: ApiSettings, counter) -> tuple[Request, bool]:
    """The chat request in `body`, checked (OpenAI's field names), and whether it asks to be streamed.
    `counter` is a tokenizer of the handlers' own: the worker's is in use (and reconfigured) meanwhile."""
    try:
        data = json.loads(body or b"{}")
    except ValueError as e:
        raise ApiError(400, f"the body is not JSON ({e}).") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object.")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "`model` is required: t2-auto, base or an expert (GET /v1/models).", param="model")
    if model not in responder.models():
        raise ApiError(404, f"model {model!r} is not served here; the models are {', '.join(responder.models())}.",
                       param="model", code="model_not_found")
    messages = data.get("messages")
    if (not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
            for m in messages)):
        raise ApiError(400, "`messages` must be a non-empty list of {role: system|user|assistant, content: str}.",
                       param="messages")
    if not any(m["role"] == "user" for m in messages):
        raise ApiError(400, "`messages` has no user message.", param="messages")
    if data.get("n", 1) != 1:
        raise ApiError(400, "only n = 1 is served.", param="n")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens", 256))
    temperature = data.get("temperature", 0.0)
    top_p = data.get("top_p", 1.0)
    if not isinstance(max_tokens, int) or not 1 <= max_tokens <= settings.max_tokens:
        raise ApiError(400, f"max_tokens must be an integer in 1..{settings.max_tokens}.", param="max_tokens")
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise ApiError(400, "temperature must be in [0, 2].", param="temperature")
    if not isinstance(top_p, int | float) or not 0 < top_p <= 1:
        raise ApiError(400, "top_p must be in (0, 1].", param="top_p")
    chat = tuple({"role": m["role"], "content": m["content"]} for m in messages)
    n_prompt = sum(len(counter(m["content"], add_special_tokens=False)["input_ids"]) for m in chat)
    if n_prompt > settings.max_prompt_tokens:
        raise ApiError(400, f"the messages hold {n_prompt} tokens, more than {settings.max_prompt_tokens}.",
                       param="messages", code="context_length_exceeded")
    return Request(chat, model, max_tokens, float(temperature), float(top_p)), bool(data.get("stream", False))


def api_app(title: str, description: str | None, responder: Responder, on_stop) -> FastAPI:
    """What both backends' applications share: the error objects (`ApiError` as OpenAI reports it, any other
    exception a 500 for that request alone) and `/v1/models`; `on_stop` runs when the server shuts down."""

    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        await on_stop()

    app = FastAPI(title=title, description=description, lifespan=lifespan)

    @app.exception_handler(ApiError)
    async def _api_error(_, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(Exception)
    async def _unexpected(_, e: Exception):  # a defect answers this request with 500, the server goes on
        return JSONResponse(ApiError(500, f"{type(e).__name__}: {e}", "server_error").body(), status_code=500)

    @app.get("/v1/models")
    async def models():
        now = int(time.time())
        return {"object": "list", "data": [{"id": m, "object": "model", "created": now, "owned_by": "t2"}
                                           for m in responder.models()]}

    return app


def create_app(responder: Responder, settings: ApiSettings | None = None):
    """The FastAPI application around `responder` (its worker starts now and stops with the app)."""
    settings = settings or ApiSettings()
    worker = Worker(responder, settings)
    counter = copy.deepcopy(responder.loaded.tokenizer)  # a Rust tokenizer is not to be shared across threads

    async def stop():
        worker.stop()

    app = api_app("t2 api", __doc__, responder, stop)
    app.state.worker = worker

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": responder.loaded.alias, "strategy": responder.req.strategy,
                "models": responder.models(), "waiting": worker.jobs.qsize(), "served": worker.served}

    @app.post("/v1/chat/completions")
    async def chat(http: HttpRequest):
        req, streamed = parse_request(await http.body(), responder, settings, counter)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        loop = asyncio.get_running_loop()
        if not streamed:
            job = worker.submit(_Job(req))
            reply = await _wait(job, settings)
            body = {"id": cid, "object": "chat.completion", "created": created, "model": reply.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                                 "finish_reason": reply.finish_reason}],
                    "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                              "total_tokens": reply.prompt_tokens + reply.completion_tokens}}
            return JSONResponse(body, headers=_headers(reply))
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        job = worker.submit(_Job(req, on_piece=lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text)))
        job.done.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, None))

        async def events():
            def chunk(delta: dict, finish: str | None = None, model: str = req.model) -> str:
                return "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                                              "model": model, "choices": [{"index": 0, "delta": delta,
                                                                           "finish_reason": finish}]}) + "\n\n"

            yield chunk({"role": "assistant", "content": ""})
            deadline = time.monotonic() + settings.timeout_s
            while True:
                try:
                    text = await asyncio.wait_for(pieces.get(), timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    job.done.cancel()
                    yield "data: " + json.dumps(ApiError(504, "timed out", "timeout").body()) + "\n\n"
                    return
                if text is None:
                    break
                yield chunk({"content": text})
            try:
                reply = job.done.result()
            except ApiError as e:
                yield "data: " + json.dumps(e.body()) + "\n\n"
                return
            yield chunk({}, reply.finish_reason, reply.model)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


async def _wait(job: _Job, settings: ApiSettings):
    try:
        return await asyncio.wait_for(asyncio.wrap_future(job.done), timeout=settings.timeout_s)
    except TimeoutError:
        job.done.cancel()
        raise ApiError(504, f"not answered within {settings.timeout_s:.0f} s; the server is busy.", "timeout",
                       code="timeout") from None


def _headers(reply) -> dict[str, str]:
    return {"x-t2-expert": reply.applies, "x-t2-pass1-ms": f"{reply.pass1_s * 1000:.0f}",
            "x-t2-pass2-ms": f"{reply.pass2_s * 1000:.0f}"}
