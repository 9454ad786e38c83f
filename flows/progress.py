"""Progress inside a flow stage, the same in the flow's process and on a worker: lines in the Prefect
log (which the terminal shows) with i/N, what the stage measures so far, and an ETA.

- REINFORCE: the step i/N, mean reward, KL and the last validation accuracy;
- next-token prediction: the step i/N and the loss;
- evaluations: the items i/N (about every tenth of the slice);
- a few-shot search: the CEM generation i/N and the best accuracy so far.
"""

from __future__ import annotations

import time

from t2ops.operation import Hooks


def _eta(done: int, total: int | None, t0: float) -> str:
    elapsed = time.perf_counter() - t0
    if not total or done <= 0:
        return f"{elapsed:.0f}s"
    return f"{elapsed:.0f}s, ETA {elapsed / done * max(total - done, 0):.0f}s"


def stage_hooks(label: str, logger, total: int | None) -> Hooks:
    """Hooks that log a stage's progress; `total`: its steps, items or generations (None: unknown)."""
    t0 = time.perf_counter()
    state = {"items": 0, "shown": 0, "valid": None}
    of = f"/{total}" if total else ""

    def on_log(p, loss=None) -> None:
        if loss is not None:  # next-token prediction: (step, loss)
            if p % 10 == 0 or p == total:
                logger.info("%s: step %d%s, loss %.4f (%s)", label, p, of, loss, _eta(p, total, t0))
            return
        if p.valid_acc is not None:
            state["valid"] = p.valid_acc
        valid = f", valid {state['valid']:.3f}" if state["valid"] is not None else ""
        logger.info("%s: step %d%s, reward %+.3f, kl %.4f%s (%s)", label, p.step, of, p.mean_reward, p.kl, valid,
                    _eta(p.step, total, t0))

    def progress(n: int, *rest) -> None:
        if rest:  # svd: (matrices done, total)
            return
        state["items"] += n
        step = max(1, (total or 10) // 10)
        if state["items"] - state["shown"] >= step or state["items"] == total:
            state["shown"] = state["items"]
            logger.info("%s: %d%s items (%s)", label, state["items"], of, _eta(state["items"], total, t0))

    def on_generation(st) -> None:
        logger.info("%s: CEM generation %d%s, best accuracy %.3f (%s)", label, st.generation, of,
                    st.best_fitness[0], _eta(st.generation, total, t0))

    return Hooks(progress=progress, on_log=on_log, on_generation=on_generation)
