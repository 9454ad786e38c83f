"""Measured peaks of single pieces of work beside `t2core.plan.footprint`'s count of them (issue 35/43).

Each probe runs in a fresh process (so one probe's peak and allocator state never reach another) and
prints its peak resident memory (VmHWM) above the process's floor, beside the footprint's estimate of the
same piece of work, and their ratio. `bench/memory.py` runs them; this file is also the child's entry.

    python bench/memory_probes.py [--model smollm2-135m] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (name, kind, sequences, length, scored or new)
PROBES = [
    ("generate 16 x (200 + 160)", "generate", 16, 200, 160),
    ("grad forward 8 x 360, 160 scored", "grad", 8, 360, 160),
    ("grad forward 4 x 360, 160 scored", "grad", 4, 360, 160),
    ("grad forward 8 x 360, SVF mlp materialise", "grad-svf-mat", 8, 360, 160),
    ("grad forward 8 x 360, SVF mlp factored", "grad-svf", 8, 360, 160),
    ("grad forward 8 x 360, SVF mlp factored, KL", "grad-svf-kl", 8, 360, 160),
    ("grad forward 8 x 360, SVF, checkpointed", "grad-svf-ckpt", 8, 360, 160),
]


def child(model_name: str, dtype: str, kind: str, seqs: int, length: int, k: int) -> dict:
    import torch

    from t2core.memory import status_mb
    from t2core.models.registry import load_model
    from t2core.precision import autocast_for
    from t2core.svf.policy import SVFConfig, SVFPolicy

    loaded = load_model(model_name)
    model = loaded.model
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(10, vocab - 10, (seqs, length), generator=gen)
    attn = torch.ones_like(ids)
    attn[0, :20] = 0  # one padded row: the mask the real batches have
    svd = policy = None
    if kind.startswith("grad-svf"):
        from t2core.models.targets import find_targets
        from t2core.svd import svd_matrix
        from t2core.svf.placement import place_policy

        svd = {n: svd_matrix(m.weight) for n, m in find_targets(model, loaded.family, "mlp").items()}
        policy = place_policy(SVFPolicy({n: int(s.shape[0]) for n, (u, s, v) in svd.items()}, SVFConfig()), model)
    with torch.no_grad():  # touch every weight page (safetensors are mapped lazily) before the floor is read:
        model(input_ids=ids[:1, :8])  # a forward alone reads 8 rows of an untied embedding (Qwen2.5's: 0.54 GB)
        for p in model.parameters():
            p.sum()
    Path("/proc/self/clear_refs").write_text("5")
    floor = status_mb("VmRSS")
    with autocast_for(dtype, torch.device("cpu")):
        if kind == "generate":
            with torch.no_grad():
                model.generate(input_ids=ids[:, :length], attention_mask=attn, max_new_tokens=k, min_new_tokens=k,
                               do_sample=False, pad_token_id=0)
        else:
            from t2core.logprobs import completion_logits, token_logprobs
            from t2core.svf.apply import attached

            if svd is None:
                emb = model.get_input_embeddings()
                emb.weight.requires_grad_(True)
                ctx = torch.enable_grad()
            else:
                ctx = attached(model, svd, policy, mode="materialise" if kind.endswith("-mat") else "factored")
            from t2core.training.recompute import recomputed

            with ctx, recomputed(model, kind.endswith("-ckpt")):
                lg = completion_logits(model, ids, attn, k)
                loss = token_logprobs(lg, ids[:, -k:]).sum()
                if kind.endswith("-kl"):
                    with torch.no_grad():
                        base = completion_logits(model, ids, attn, k)
                    from t2core.logprobs import kl_per_token

                    loss = loss + kl_per_token(lg, base).sum()
                loss.backward()
    return {"peak_mb": status_mb("VmHWM") - floor}


def estimate(model_name: str, dtype: str, kind: str, seqs: int, length: int, k: int) -> float:
    from t2core.plan import footprint as fp
    from t2core.plan.shape import model_shape

    shape = model_shape(model_name)
    if kind == "generate":
        f = fp.generation(shape, seqs, length, k, dtype)
    else:
        spec = "mlp" if kind.startswith("grad-svf") else None
        f = fp.grad_forward(shape, seqs, length, k, dtype, spec, kl=kind.endswith("-kl"),
                            checkpointing=kind.endswith("-ckpt"), mode="materialise" if kind.endswith("-mat") else "factored")
    return fp.with_slack(f).total / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--child", nargs=4, metavar=("KIND", "SEQS", "LENGTH", "K"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, seqs, length, k = a.child[0], *map(int, a.child[1:])
        print(json.dumps(child(a.model, a.dtype, kind, seqs, length, k)))
        return
    print(f"{'probe':40s} {'measured MB':>12s} {'plan MB':>9s} {'plan/measured':>14s}")
    for name, kind, seqs, length, k in PROBES:
        out = subprocess.run([sys.executable, __file__, "--model", a.model, "--dtype", a.dtype, "--child", kind,
                              str(seqs), str(length), str(k)], capture_output=True, text=True, check=True)
        got = json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]
        est = estimate(a.model, a.dtype, kind, seqs, length, k)
        print(f"{name:40s} {got:12.0f} {est:9.0f} {est / got:14.2f}", flush=True)


if __name__ == "__main__":
    main()
