"""`t2 api`'s server, from what was asked to a listening socket, in one place: the `t2 api` command and the
`experts-api` flow (flows/experts_api.py) both call `serve`, so what they serve, what they check first and how
they stop is the same.

Why the model is a callable: the command loads it with a spinner, a flow takes its process's cached copy (the
one its training stages used); the rest (the adaptation request, the responder, the server) is shared.
It runs until the process is told to stop (SIGINT, SIGTERM: uvicorn finishes the requests in flight, then the
signal carries on as it would have, so a stopped `t2 api` or flow run ends as an interrupted command does).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from t2core.errors import ConfigError
from t2core.profiles import Profile, get_profile


@dataclass(frozen=True)
class ServeRequest:
    profile: str
    strategy: str = "prompt"  # pass 1 of t2-auto: a strategy that decides per question
    sampler: str = "hf"  # what generates with the t2 backend (hf, vllm, vllm-lora)
    host: str = "127.0.0.1"
    port: int = 8000
    experts: tuple[str, ...] = ()  # t2-auto's experts, one per category (ids); empty: the profile's stored ones
    cls_expert: str | None = None  # cls-expert's z^c (an id); None: the stored one
    also: tuple[str, ...] = ()  # more expert ids servable by their task's name (not t2-auto's choices)
    seed: int | None = None
    settings: Any = None  # t2api.server.ApiSettings (None: its defaults); imported where the server starts
    backend: str = "t2"  # t2: t2's worker answers (with `sampler`); vllm: vLLM's own OpenAI server (t2api/forward.py)
    lora_rank: int = 0  # vllm backend: the adapters' slot rank (0: the model's largest matrix rank, at most 512)


def check_address(host: str, port: int, bind: bool = True) -> None:
    """`host:port` is one a server can listen on: the port in range and, with `bind`, free now (a flow that
    trains for an hour before it serves learns of a taken port first, not last)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"--port {port!r} must be a whole number in 1..65535.")
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"--host {host!r}: give an address to listen on, e.g. 127.0.0.1 or 0.0.0.0.")
    if not bind:
        return
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closed port is free
            s.bind((host, port))
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port (or --host), "
                          "or stop what holds it.") from None


BACKENDS = {"t2": "t2's worker decides and generates, with --sampler (hf, vllm, vllm-lora)",
            "vllm": "t2 decides (pass 1), vLLM's own OpenAI server answers with LoRA adapters of the experts"}


def check_backend(req: ServeRequest) -> None:
    if req.backend not in BACKENDS:
        raise ConfigError(f"--backend {req.backend!r} is not one of {', '.join(BACKENDS)}; "
                          + "; ".join(f"{k}: {v}" for k, v in BACKENDS.items()) + ".")
    if req.backend == "vllm" and req.sampler != "hf":
        raise ConfigError(f"--sampler {req.sampler} is for --backend t2: with --backend vllm, vLLM's own server "
                          "answers and pass 1 runs on hf; drop --sampler.")
    from t2core.sampling.vllm_lora import RANKS

    if req.lora_rank and (req.backend != "vllm" or req.lora_rank not in RANKS):
        raise ConfigError(f"--lora-rank {req.lora_rank} needs --backend vllm and one of {', '.join(map(str, RANKS))} "
                          "(the ranks vLLM takes); 0 picks the model's own.")


def check(req: ServeRequest, bind: bool = True) -> Profile:
    """Everything `req` names, before a model loads: the profile, the strategy, the sampler and backend, the
    address and each expert id given (and, for the vllm backend, that its environment exists)."""
    from t2core.experts import ExpertRef
    from t2core.sampling import check_sampler
    from t2ops.adaptation import check_ask_strategy

    prof = get_profile(req.profile)
    check_ask_strategy(req.strategy)
    check_sampler(req.sampler)
    check_backend(req)
    if req.backend == "vllm":
        from t2core.serving.vllm_env import ServerSettings

        ServerSettings().interpreter()
    check_address(req.host, req.port, bind)
    for ref in [*req.experts, *req.also, *([req.cls_expert] if req.cls_expert else [])]:
        ExpertRef.resolve(ref)
    return prof


def responder_for(req: ServeRequest, prof: Profile, loaded):
    """The Responder of `req` on `loaded`: the adaptation request `t2 ask` builds (`adapt_request`), its
    experts servable by task name, and `also`'s."""
    from t2core.experts import ExpertRef
    from t2ops import adaptation as op
    from t2ops.respond import Responder

    areq = op.adapt_request(prof, req.strategy, "", None, ",".join(req.experts) or None, req.cls_expert, None, None,
                            "train", req.seed, req.sampler, None, loaded.weights_hash)
    names = {ExpertRef.resolve(e).header.task: e for e in (*req.also, *areq.experts)}
    return Responder(areq, loaded, names)


def serve(req: ServeRequest, load: Callable[[str, int, str], Any], say: Callable[[str], None] = print) -> None:
    """Check `req`, load the profile's model with `load(model, seed, factor_dtype)`, and answer requests until the
    process is stopped."""
    import uvicorn

    from t2api.server import ApiSettings, create_app

    prof = check(req)
    loaded = load(prof.model, prof.seed_or_default(req.seed), prof.resolved_factor_dtype())
    responder = responder_for(req, prof, loaded)
    settings = req.settings or ApiSettings()
    vllm = None
    try:
        if req.backend == "vllm":
            vllm, app = vllm_app(req, responder, settings, say)
            how = f"answered by vLLM's OpenAI server (pid {vllm.pid}, LoRA slots of rank {vllm.settings.lora_rank})"
        else:
            app, how = create_app(responder, settings), f"{req.sampler} sampler"
        say(f"t2 api: {prof.model} on http://{req.host}:{req.port}/v1 (models: {', '.join(responder.models())}); "
            f"t2-auto picks by {req.strategy}; {how}")
        uvicorn.Server(uvicorn.Config(app, host=req.host, port=req.port, log_level="warning")).run()
    finally:
        if vllm is not None:
            vllm.close()


def vllm_app(req: ServeRequest, responder, settings, say):
    """vLLM's OpenAI server with every servable expert as a LoRA adapter, and t2's front for it."""
    from dataclasses import replace

    from t2api.forward import Routes, create_forward_app
    from t2core.sampling.vllm_lora import LoraAdapters, adaptable, slot_rank
    from t2core.serving.vllm_env import ServerSettings
    from t2core.serving.vllm_openai import VLLMOpenAIServer

    loaded = responder.loaded
    rank = req.lora_rank or slot_rank(loaded.model)
    routes = Routes(responder, LoraAdapters(loaded, rank))
    adapters = routes.prepared()
    say(f"t2 api: starting vLLM's OpenAI server ({len(adapters)} adapters, rank at most {rank}; a minute or more)")
    server = VLLMOpenAIServer(loaded, responder.req.eval.generation.dtype,
                              replace(ServerSettings(), lora_rank=rank, lora_targets=adaptable(loaded.model)),
                              adapters)
    routes.server = server
    try:
        return server, create_forward_app(responder, routes, settings)
    except BaseException:
        server.close()
        raise
