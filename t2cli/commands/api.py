"""`t2 api`: serve the profile's model as an OpenAI-compatible endpoint that adapts to each request
(t2api/server.py; docs/serving.md). The options become a `t2api.launch.ServeRequest`; `serve` does the rest, as
for the experts-api flow."""

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
    backend: str = typer.Option("t2", help="who answers: t2 (t2's worker, with --sampler) or vllm (vLLM's own "
                                           "OpenAI server, each expert a LoRA adapter, continuous batching and "
                                           "token streaming; t2 runs pass 1 in front)"),
    lora_rank: int = typer.Option(0, help="--backend vllm: the adapters' largest rank (8..512; 0: the model's own "
                                          "largest matrix rank); lower holds less memory, truncates more"),
) -> None:
    """Serve the profile's model at /v1/chat/completions: model `t2-auto` (two passes), an expert, or `base`."""
    quiet_transformers()
    from t2api.launch import ServeRequest, serve
    from t2api.server import ApiSettings

    settings = ApiSettings(max_queue, max_batch, batch_window_ms / 1000, timeout_s)
    ids = tuple(e.strip() for e in (experts or "").split(",") if e.strip())
    serve(ServeRequest(profile, strategy, sampler, host, port, ids, cls_expert, seed=seed, settings=settings,
                       backend=backend, lora_rank=lora_rank),
          common.load, lambda line: console.print(line, highlight=False))
