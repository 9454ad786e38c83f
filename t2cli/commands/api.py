"""`t2 api`: serve the profile's model as an OpenAI-compatible endpoint that adapts to each request
(t2api/server.py; docs/serving.md)."""

from __future__ import annotations

import typer

from t2cli import common
from t2cli.common import app, console, handle_errors, quiet_transformers


@app.command("api")
@handle_errors
def api(
    profile: str = typer.Option("smol", help="profile whose model, experts and pass-1 strategy are served"),
    strategy: str = typer.Option("prompt", help="pass 1 of `t2-auto`: a strategy that decides per question "
                                                "(prompt or cls-expert)"),
    experts: str | None = typer.Option(None, help="comma-separated expert ids (default: the profile's stored "
                                                  "experts, one per training task)"),
    cls_expert: str | None = typer.Option(None, help="classification expert id (cls-expert; default: the stored one)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    max_queue: int = typer.Option(64, help="requests that may wait; one more is answered 429"),
    max_batch: int = typer.Option(8, help="requests answered together"),
    batch_window_ms: float = typer.Option(20.0, help="how long to wait for more requests to batch"),
    timeout_s: float = typer.Option(600.0, help="a request not answered by then gets 504"),
    seed: int | None = typer.Option(None, help="random seed (default: the profile's)"),
    sampler: str = typer.Option("hf", help="what generates: hf (in this process, exact experts), vllm (a vLLM "
                                           "server, an expert's weights swapped in per group of requests) or "
                                           "vllm-lora (a vLLM server, each expert a LoRA adapter per request; "
                                           "docs/serving.md)"),
) -> None:
    """Serve the profile's model at /v1/chat/completions: model `t2-auto` (two passes), an expert, or `base`."""
    quiet_transformers()
    from t2api.server import ApiSettings, create_app
    from t2core.errors import ConfigError
    from t2core.profiles import get_profile
    from t2core.sampling import check_sampler
    from t2ops import adaptation as op
    from t2ops.respond import Responder

    prof = get_profile(profile)
    op.check_ask_strategy(strategy)
    check_sampler(sampler)
    settings = ApiSettings(max_queue, max_batch, batch_window_ms / 1000, timeout_s)
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} must be in 1..65535.")
    from t2cli.commands.adapt import _check_options

    _check_options(experts, cls_expert, None)
    loaded = common.load(prof.model, prof.seed_or_default(seed), prof.factor_dtype)
    req = op.adapt_request(prof, strategy, "", None, experts, cls_expert, None, None, "train", seed, sampler, None,
                         loaded.weights_hash)
    from t2core.experts import ExpertRef

    names = {ExpertRef.resolve(e).header.task: e for e in req.experts}
    responder = Responder(req, loaded, names)
    import uvicorn

    console.print(f"t2 api: {prof.model} on http://{host}:{port}/v1 (models: {', '.join(responder.models())}); "
                  f"t2-auto picks by {strategy}; {sampler} sampler", highlight=False)
    uvicorn.run(create_app(responder, settings), host=host, port=port, log_level="warning")
