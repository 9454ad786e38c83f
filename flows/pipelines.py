"""Prefect flows: `svd` and `full-paper`.

`full-paper` chains: load model -> SVD (cached artifact) -> base-model evaluation of
every benchmark slice of the profile. Later stages (expert training, dispatcher, CEM,
adapted evaluation) join the chain as their issues land. Each task is cached by content,
so rerunning after a crash redoes only what is missing.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger

from flows.runtime import fault_injection_point
from flows.steps import data_dir_str, eval_step, load_model_step, svd_step
from t2core.profiles import get_profile
from t2core.sampling import GenerationConfig


@flow(name="svd", log_prints=True)
def svd_flow(model: str = "smollm2-135m", targets: str = "mlp", seed: int = 0) -> dict[str, Any]:
    ident = load_model_step(model, seed)
    return svd_step(ident, targets)


@flow(name="full-paper", log_prints=True)
def full_paper_flow(profile: str = "smol", data_dir: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """The whole paper pipeline for one profile (today: SVD + base evaluation)."""
    prof = get_profile(profile)
    seed = prof.seed if seed is None else seed
    logger = get_run_logger()
    data_dir = data_dir_str(data_dir)
    ident = load_model_step(prof.model, seed)
    steps: list[dict[str, Any]] = []
    svd_state = svd_step(ident, prof.targets, return_state=True)
    steps.append({"step": "svd", "state": svd_state.name, **svd_state.result()})
    for sl in prof.evals:
        gen = asdict(GenerationConfig(batch_size=prof.batch_size, dtype=prof.dtype, seed=seed))
        if prof.max_new_tokens is not None:
            from t2core.tasks import get_task

            gen["max_new_tokens"] = min(prof.max_new_tokens, get_task(sl.task).max_new_tokens)
        state = eval_step(
            ident, sl.task, sl.split, sl.limit, gen, data_dir, return_state=True
        )
        out = state.result()
        steps.append({"step": f"eval:{sl.task}", "state": state.name, **out})
        logger.info("eval %s/%s: accuracy %.3f (%s)", sl.task, sl.split, out.get("accuracy") or 0.0, state.name)
        fault_injection_point("eval")
    return {"profile": profile, "model": prof.model, "weights_hash": ident["weights_hash"], "steps": steps}
