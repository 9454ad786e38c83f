"""`t2 api` throughput: the same chats answered by `base` (no pass 1, base weights) and by `t2-auto` (pass 1,
then the chosen expert), through the HTTP server and the OpenAI client, on one machine in one run.

    T2_HOME=<home with the profile's experts> python bench/serve.py --profile smol --requests 16 --concurrency 4

Prints requests/s and generated tokens/s of `base`, of `experts` (each request names one of the served experts,
in turn: pass 2 alone, with different experts in one batch) and of `t2-auto`, their ratios to base, and
pass 1's share of a t2-auto request's server time (from the x-t2-pass1-ms / x-t2-pass2-ms headers). The
questions are the first test items of GSM8K, MBPP and ARC-Easy, in turn. `--sampler` picks what generates:
`hf` (in the server's process, the expert materialised per group), `vllm-lora` (a vLLM server, each expert a
LoRA adapter in the same batch as base requests) or `vllm` (a vLLM server, weights swapped per group); `base`
through the same sampler is the reference, so the ratio is the cost of adapting on that engine.

`--backend vllm` measures `t2 api --backend vllm` instead: vLLM's own OpenAI server answers, t2 runs pass 1 in
front (t2api/forward.py). It adds a row `vllm direct`: the same chats sent straight to vLLM's server for the base
model, no t2 in between, which is the issue's reference ("vLLM serving the base model alone"); the ratios are
printed against it and against `base` through t2.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def _questions(n: int, data_dir: str | None) -> list[str]:
    from t2core.paths import resolve_data_dir
    from t2core.tasks import get_task

    d = resolve_data_dir(data_dir)
    per = [get_task(t).load("test", d).samples[: n] for t in ("gsm8k", "mbpp", "arc_easy")]
    tasks = [get_task(t) for t in ("gsm8k", "mbpp", "arc_easy")]
    out = []
    for i in range(n):
        task, samples = tasks[i % 3], per[i % 3]
        out.append(task.messages(samples[i // 3])[-1]["content"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smol")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--sampler", default="hf", help="hf, vllm-lora or vllm (--backend t2)")
    ap.add_argument("--backend", default="t2", help="t2 (t2's worker, --sampler) or vllm (vLLM's own OpenAI server)")
    ap.add_argument("--lora-rank", type=int, default=0, help="--backend vllm: the adapters' slot rank (0: the model's)")
    ap.add_argument("--experts", default="", help="comma-separated expert ids (default: the profile's stored experts)")
    args = ap.parse_args()

    import openai
    import uvicorn

    from t2api.server import ApiSettings, create_app
    from t2core.experts import ExpertRef
    from t2core.models import load_model
    from t2core.profiles import get_profile
    from t2ops.adaptation import adapt_request
    from t2ops.respond import Responder

    prof = get_profile(args.profile)
    loaded = load_model(prof.model, seed=prof.seed_or_default(None))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings, vllm = ApiSettings(max_batch=args.concurrency), None
    if args.backend == "vllm":
        from t2api.launch import ServeRequest, check_backend, responder_for, vllm_app

        sreq = ServeRequest(args.profile, port=port, backend="vllm", lora_rank=args.lora_rank,
                            experts=tuple(e for e in args.experts.split(",") if e))
        check_backend(sreq)
        responder = responder_for(sreq, prof, loaded)
        vllm, app = vllm_app(sreq, responder, settings, print)
    else:
        req = adapt_request(prof, "prompt", "", None, args.experts or None, None, None, None, "train", None,
                            args.sampler, None, loaded.weights_hash)
        responder = Responder(req, loaded, {ExpertRef.resolve(e).header.task: e for e in req.experts})
        app = create_app(responder, settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=3600)
    questions = _questions(args.requests, args.data_dir)

    experts = [n for n in responder.names if not n.startswith("svf:")]  # by task name, in turn

    direct = None if vllm is None else openai.OpenAI(base_url=f"{vllm.url}/v1", api_key="unused", max_retries=0,
                                                      timeout=3600)

    def run(model: str) -> dict:
        def one(iq: tuple[int, str]):
            i, q = iq
            if model == "vllm direct":  # vLLM's server alone, the base model: no t2 in front
                r = direct.chat.completions.create(model="base", messages=[{"role": "user", "content": q}],
                                                   max_tokens=args.max_tokens, temperature=0)
                return (r.usage.completion_tokens, 0.0, 0.0)
            asked = experts[i % len(experts)] if model == "experts" else model
            raw = client.chat.completions.with_raw_response.create(
                model=asked, messages=[{"role": "user", "content": q}], max_tokens=args.max_tokens, temperature=0)
            r = raw.parse()
            return (r.usage.completion_tokens, float(raw.headers["x-t2-pass1-ms"]),
                    float(raw.headers["x-t2-pass2-ms"]))

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            out = list(pool.map(one, enumerate(questions)))
        wall = time.perf_counter() - t0
        p1, p2 = [o[1] for o in out], [o[2] for o in out]
        return {"rps": len(out) / wall, "tps": sum(o[0] for o in out) / wall, "wall": wall,
                "pass1": statistics.mean(p1) / max(statistics.mean(p1) + statistics.mean(p2), 1e-9)}

    run("base")  # warm-up: the first generation pays for lazy initialisation
    rows = {"base": run("base"), "experts": run("experts"), "t2-auto": run("t2-auto")}
    if direct is not None:
        rows["vllm direct"] = run("vllm direct")
    how = f"{args.sampler} sampler" if vllm is None else f"vLLM's OpenAI server (LoRA rank {vllm.settings.lora_rank})"
    print(f"{prof.model}, {args.requests} requests, {args.concurrency} at once, max_tokens {args.max_tokens}, {how}")
    print(f"{'':12s} {'req/s':>8s} {'tok/s':>8s} {'wall s':>8s} {'pass 1 share':>13s}")
    for name, m in rows.items():
        print(f"{name:12s} {m['rps']:8.3f} {m['tps']:8.1f} {m['wall']:8.1f} {m['pass1']:13.1%}")
    for ref in ("base", "vllm direct") if direct is not None else ("base",):
        b = rows[ref]
        for name in ("experts", "t2-auto") + (("base",) if ref != "base" else ()):
            m = rows[name]
            print(f"{name} / {ref}: requests/s {m['rps'] / b['rps']:.2f}, tokens/s {m['tps'] / b['tps']:.2f}")
    print(f"(experts: each request names one of the {len(experts)} experts in turn, the cost of the experts alone)")
    server.should_exit = True
    if vllm is not None:
        vllm.close()


if __name__ == "__main__":
    main()
