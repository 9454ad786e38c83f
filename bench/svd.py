"""Benchmark: SVD of the targeted matrices, and reuse of the stored decomposition.

Prints, measured side by side in one run (machines are noisy, so compare ratios):
- SVD compute time per target spec and bytes written vs the bytes of the weights decomposed;
- verified reuse (hash check + load) time vs compute time.

    python bench/svd.py --model smollm2-135m --targets mlp attn
"""

from __future__ import annotations

import argparse
import tempfile
import time

from t2core.artifacts import ArtifactStore
from t2core.models import find_targets, load_model
from t2core.svd import ensure_svd, load_svd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--targets", nargs="+", default=["mlp"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    loaded = load_model(args.model, seed=args.seed)
    print(f"model {args.model}: {loaded.n_params / 1e6:.1f}M params, load {time.perf_counter() - t0:.2f}s")
    print(f"{'targets':8} {'matrices':>8} {'weights MB':>10} {'svd MB':>8} {'bytes x':>7} {'svd s':>7} "
          f"{'reuse s':>7} {'reuse/svd':>9} {'max err':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(tmp)  # fresh store: always computes
        for spec in args.targets:
            w_bytes = sum(m.weight.numel() * 4 for m in find_targets(loaded.model, loaded.family, spec).values())
            info = ensure_svd(loaded, spec, store=store)
            t1 = time.perf_counter()
            again = ensure_svd(loaded, spec, store=store)
            load_svd(again, store=store)
            reuse = time.perf_counter() - t1
            assert again.reused
            print(f"{spec:8} {info.n_matrices:8d} {w_bytes / 1e6:10.1f} {info.bytes / 1e6:8.1f} "
                  f"{info.bytes / w_bytes:7.2f} {info.seconds:7.2f} {reuse:7.2f} {reuse / info.seconds:9.3f} "
                  f"{info.max_error:9.2e}")


if __name__ == "__main__":
    main()
