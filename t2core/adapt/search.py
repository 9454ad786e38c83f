"""A few-shot search end to end (paper §3.3): shots → expert bank → checkpointed CEM → the mixture
stored as an expert.

Resumable like training: after every generation the CEM state (a few numbers per coefficient and
the history) is written atomically to `T2_HOME/checkpoints/few-shot/<run id>/state.json`; a killed
search rerun with the same request continues from its last generation and, because generation g
draws from its own seed, ends exactly where the uninterrupted search would have. The result is
stored under the run id in the experts store, so a rerun after it finished only verifies it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from t2core.adapt import cem
from t2core.adapt.cem import CEMState
from t2core.adapt.fewshot import FewShotConfig, ShotScorer, few_shot_run_id, pick_shots
from t2core.artifacts import ArtifactStore
from t2core.errors import ConfigError
from t2core.experts import KIND, ExpertRef, run_expert, store_expert
from t2core.faults import fault_injection_point
from t2core.models.registry import LoadedModel
from t2core.paths import t2_home
from t2core.sampling.base import Sampler
from t2core.svf import ExpertHeader, svf_weights
from t2core.svf.bank import ExpertBank
from t2core.svf.mixture import mixture_policy
from t2core.svf.placement import place_bank, place_policy, resident_svd
from t2core.tasks import get_task
from t2core.tasks.base import Dataset


@dataclass(frozen=True)
class SearchPlan:
    run_id: str
    experts: tuple[ExpertRef, ...]  # the mixture's ingredients, in the order of α
    shots: Dataset
    targets: str


def plan_search(weights_hash: str, cfg: FewShotConfig, experts: list[ExpertRef],
                data_dir: str | Path | None = None, backend: str = "hf") -> SearchPlan:
    """The search's id and inputs, without a model: the experts are verified and must share a base
    model and target spec; the shots are drawn."""
    if not experts:
        raise ConfigError("few-shot adaptation needs experts to mix; train them first (`t2 train`).")
    for e in experts:
        e.check_model(weights_hash)
    specs = {e.header.svf.get("targets", "mlp") for e in experts}
    if len(specs) != 1:
        raise ConfigError(f"the experts target different matrices ({', '.join(sorted(specs))}); mix experts "
                          "trained with one target spec.")
    shots = pick_shots(cfg, data_dir)
    ordered = tuple(sorted(experts, key=lambda e: e.id))
    run_id = few_shot_run_id(weights_hash, [e.id for e in ordered], cfg, get_task(cfg.task).version, shots, backend)
    return SearchPlan(run_id, ordered, shots, specs.pop())


@dataclass
class SearchResult:
    run_id: str
    expert: ExpertRef  # the stored mixture
    state: CEMState
    alpha: torch.Tensor  # (K,) or (K, L), in the order of `experts`
    experts: tuple[str, ...]
    shot_ids: tuple[str, ...]
    seconds: float
    reused: bool


def checkpoint_path(run_id: str) -> Path:
    return t2_home() / "checkpoints" / "few-shot" / run_id / "state.json"


def _save_state(path: Path, state: CEMState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(state.to_json(), f)
    os.replace(tmp, path)


def search(loaded: LoadedModel, cfg: FewShotConfig, planned: SearchPlan, sampler: Sampler,
           store: ArtifactStore | None = None, on_generation: Callable[[CEMState], None] | None = None
           ) -> SearchResult:
    store = store or ArtifactStore()
    if store.exists(KIND, planned.run_id):  # done before: verify and reuse
        return stored_search(planned, store)
    svd = resident_svd(loaded, planned.targets, store=store)  # on the model's devices, once per model load
    bank = place_bank(ExpertBank.of([svf_weights(place_policy(e.load(), loaded.model), svd, loaded.weights_hash)
                                     for e in planned.experts]), loaded.model)
    scorer = ShotScorer(sampler, loaded.model, svd, bank, get_task(cfg.task), planned.shots, cfg,
                        origin=loaded.directory)
    ckpt = checkpoint_path(planned.run_id)
    state = CEMState.from_json(json.loads(ckpt.read_text())) if ckpt.is_file() else \
        cem.start(cfg.cem, bank.k, len(bank.layers))

    def after(st: CEMState) -> None:
        _save_state(ckpt, st)
        fault_injection_point("cem-generation")  # resume tests: a kill -9 right after a checkpoint loses nothing
        if on_generation:
            on_generation(st)

    state = cem.search(cfg.cem, state, scorer, after)
    alpha = state.alpha()
    t0 = time.perf_counter()
    refit = scorer.one_at_a_time(alpha[None])[0]  # the best, re-evaluated on its own (materialised)
    # every generation's time, those before a kill included (a resumed search is not cheaper than it was)
    seconds = sum(h.get("seconds", 0.0) for h in state.history) + time.perf_counter() - t0
    history = [*state.history]
    mixed = mixture_policy(bank, alpha, planned.targets)  # its SVF settings are the header's, not a copy of them
    header = ExpertHeader(
        base_weights_hash=loaded.weights_hash, model=loaded.alias, task=cfg.task,
        svf=asdict(mixed.cfg),
        ranks={n: int(svd[n][1].shape[0]) for n in svd}, data_files=planned.shots.files,
        config={"mixture": {"experts": [e.id for e in planned.experts], "alpha": alpha.tolist(),
                            "per_layer": cfg.cem.per_layer, "layers": list(bank.layers),
                            "shots": [s.id for s in planned.shots.samples], "split": cfg.split,
                            "few_shot": _jsonable(cfg), "history": history, "stopped": state.done}},
        metrics={"fitness_accuracy": state.best_fitness[0], "fitness_loglik": state.best_fitness[1],
                 "refit_accuracy": refit[0], "refit_loglik": refit[1], "generations": float(state.generation)},
        origin="few-shot-mixture")

    ref = store_expert(store, planned.run_id, mixed, header,
                       meta={"weights_hash": loaded.weights_hash, "task": cfg.task, "mixture": True})
    return SearchResult(planned.run_id, ref, state, alpha, tuple(e.id for e in planned.experts),
                        tuple(s.id for s in planned.shots.samples), seconds, False)


def stored_search(planned: SearchPlan, store: ArtifactStore | None = None) -> SearchResult:
    """The finished search `planned`, from its stored mixture (verified): nothing is scored."""
    store = store or ArtifactStore()
    ref = run_expert(store, planned.run_id)
    mix = ref.header.config["mixture"]
    hist = tuple(mix["history"])
    best = hist[-1]["best"] if hist else [0.0, 0.0]
    alpha = torch.tensor(mix["alpha"])
    state = CEMState(tuple(alpha.shape), (), (), len(hist), tuple(alpha.reshape(-1).tolist()), tuple(best), 0, hist,
                     mix["stopped"])
    return SearchResult(planned.run_id, ref, state, alpha, tuple(mix["experts"]), tuple(mix["shots"]), 0.0, True)


def _jsonable(cfg: FewShotConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg), default=str))
