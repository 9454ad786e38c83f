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
    sampler: str = "hf"  # what generates (hf, vllm, vllm-lora)
    host: str = "127.0.0.1"
    port: int = 8000
    experts: tuple[str, ...] = ()  # t2-auto's experts, one per category (ids); empty: the profile's stored ones
    cls_expert: str | None = None  # cls-expert's z^c (an id); None: the stored one
    also: tuple[str, ...] = ()  # more expert ids servable by their task's name (not t2-auto's choices)
    seed: int | None = None
    settings: Any = None  # t2api.server.ApiSettings (None: its defaults); imported where the server starts


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


def check(req: ServeRequest, bind: bool = True) -> Profile:
    """Everything `req` names, before a model loads: the profile, the strategy, the sampler, the address and
    each expert id given."""
    from t2core.experts import ExpertRef
    from t2core.sampling import check_sampler
    from t2ops.adaptation import check_ask_strategy

    prof = get_profile(req.profile)
    check_ask_strategy(req.strategy)
    check_sampler(req.sampler)
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
    loaded = load(prof.model, prof.seed_or_default(req.seed), prof.factor_dtype)
    responder = responder_for(req, prof, loaded)
    say(f"t2 api: {prof.model} on http://{req.host}:{req.port}/v1 (models: {', '.join(responder.models())}); "
        f"t2-auto picks by {req.strategy}; {req.sampler} sampler")
    server = uvicorn.Server(uvicorn.Config(create_app(responder, req.settings or ApiSettings()), host=req.host, port=req.port,
                                           log_level="warning"))
    server.run()
