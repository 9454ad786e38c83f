"""An expert swap on the host, two ways side by side (issue 43): W' written over W with W read back from the
model's safetensors file (`materialised(..., origin=loaded.directory)`, what t2 does), against W set aside
while W' is in place (`origin=None`, what it did before). Each way runs in a fresh process: the model and
its SVD factors loaded, then one swap with a few answers generated under it; printed: the peak resident
set above what was held before the swap (VmHWM, reset there), the swap's own time (in and out), and the
ratio of the two ways.

    python bench/swap_memory.py [--model smollm2-135m] [--rows 4] [--new 64] [--swaps 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(model: str, in_place: bool, rows: int, new: int, swaps: int) -> dict:
    import torch

    from t2core.memory import peak_memory, release_freed
    from t2core.models import load_model
    from t2core.svf import SVFConfig, SVFPolicy, materialised, ranks_of
    from t2core.svf.placement import place_policy, resident_svd

    loaded = load_model(model)
    svd = resident_svd(loaded, "mlp")
    for u, s, v in svd.values():  # every factor's pages in memory before the floor is read
        float(u.sum() + s.sum() + v.sum())
    for p in loaded.model.parameters():
        float(p.sum())
    pol = SVFPolicy(ranks_of(svd), SVFConfig(targets="mlp"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in pol.params.values():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    pol = place_policy(pol, loaded.model)
    ids = torch.randint(10, 1000, (rows, 32), generator=g)
    origin = loaded.directory if in_place else None
    release_freed()
    swap_s = 0.0
    with peak_memory() as peak:  # the resident set when it began (the floor) and its peak while it ran
        for _ in range(swaps):
            t0 = time.perf_counter()
            cm = materialised(loaded.model, svd, pol, origin=origin)
            cm.__enter__()
            t1 = time.perf_counter()
            with torch.no_grad():
                loaded.model.generate(ids, max_new_tokens=new, do_sample=False, pad_token_id=0)
            t2 = time.perf_counter()
            cm.__exit__(None, None, None)
            swap_s += (t1 - t0) + (time.perf_counter() - t2)
    floor = peak["peak_floor_host_mb"]
    return {"above_floor_mb": peak["peak_host_mb"] - floor, "floor_mb": floor, "swap_s": swap_s / swaps,
            "origin": str(origin) if origin else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--swaps", type=int, default=3)
    ap.add_argument("--child", choices=("in-place", "aside"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.model, a.child == "in-place", a.rows, a.new, a.swaps)))
        return
    got = {}
    for way in ("aside", "in-place"):
        out = subprocess.run([sys.executable, __file__, "--child", way, "--model", a.model, "--rows", str(a.rows),
                              "--new", str(a.new), "--swaps", str(a.swaps)], capture_output=True, text=True, check=True)
        got[way] = json.loads(out.stdout.strip().splitlines()[-1])
    if got["in-place"]["origin"] is None:
        print(f"{a.model} has no safetensors directory: both ways set W aside")
    print(f"{'way':10s} {'peak above floor MB':>20s} {'floor MB':>9s} {'swap in+out s':>14s}")
    for way, r in got.items():
        print(f"{way:10s} {r['above_floor_mb']:20.0f} {r['floor_mb']:9.0f} {r['swap_s']:14.3f}")
    a_, i_ = got["aside"], got["in-place"]
    print(f"in-place / aside: peak above floor {i_['above_floor_mb'] / a_['above_floor_mb']:.2f}x, "
          f"swap time {i_['swap_s'] / max(a_['swap_s'], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
