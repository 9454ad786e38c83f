"""The flows t2 offers, in one place: `t2 run <name>` runs one, `t2 serve` serves them all as deployments.

Each entry says how the CLI's options become the flow's parameters and what a deployment's default
parameters are for a profile; adding a flow is one entry here and its function in `pipelines`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flows import pipelines as P
from t2core.profiles import Profile
from t2core.registry import Registry


@dataclass(frozen=True)
class FlowEntry:
    name: str
    flow: Any  # the prefect Flow
    staged: bool  # its result lists stages (`steps`): `t2 run` prints them as a table
    params: Callable[[Profile, dict], dict]  # (profile, the CLI's options) -> the flow's parameters
    defaults: Callable[[Profile], dict]  # a deployment's default parameters for a profile
    options: tuple[str, ...] = ()  # `t2 run` options only this flow takes (refused for the others)
    check: Callable[[dict], object] | None = None  # its parameters checked before a Prefect server starts


def _common(prof: Profile, o: dict) -> dict:
    return {"profile": prof.name, "data_dir": o.get("data_dir"), "seed": o.get("seed"), "sampler": o.get("sampler")}


def _staged(prof: Profile, o: dict) -> dict:
    """A staged flow's parameters: the common ones and where its stages run."""
    return {**_common(prof, o), "runner": o.get("runner"), "address": o.get("address"), "workers": o.get("workers"),
            "gpus_per_worker": o.get("gpus_per_worker"), "stages": o.get("stages")}


def _experts_api(prof: Profile, o: dict) -> dict:
    return {"profile": prof.name, "data_dir": o.get("data_dir"), "seed": o.get("seed"), "out": o.get("out"),
            "host": o.get("host") or "127.0.0.1", "port": 8000 if o.get("port") is None else o["port"],
            "strategy": o.get("strategy") or "prompt", "sampler": o.get("sampler") or "hf",
            "serve": o.get("serve") is not False, "peft_rank": o.get("peft_rank"), "backend": o.get("backend") or "t2"}


def _check_experts_api(p: dict) -> None:
    from flows.experts_api import check_params

    check_params(p["profile"], p["out"], p["host"], p["port"], p["strategy"], p["sampler"], p["peft_rank"],
                 p["serve"], p["backend"])


FLOWS: Registry[FlowEntry] = Registry("flow")
for _entry in (
    FlowEntry("full-paper", P.full_paper_flow, True, _staged, lambda p: {"profile": p.name}),
    FlowEntry("transfer", P.transfer_flow, True, lambda p, o: {**_staged(p, o), "dst": o.get("dst")},
              lambda p: {"profile": p.name}),
    FlowEntry("ablations", P.ablations_flow, True, _staged, lambda p: {"profile": p.name}),
    FlowEntry("train-expert", P.train_expert_flow, False, lambda p, o: {**_common(p, o), "task": o["task"]},
              lambda p: {"profile": p.name}),
    FlowEntry("svd", P.svd_flow, False,
              lambda p, o: {"model": p.model, "targets": p.targets, "seed": p.seed_or_default(o.get("seed"))},
              lambda p: {"model": p.model, "targets": p.targets}),
    FlowEntry("experts-api", P.experts_api_flow, False, _experts_api, lambda p: {"profile": p.name},
              ("out", "host", "port", "strategy", "serve", "peft_rank", "backend"), _check_experts_api),
):
    FLOWS.register(_entry.name, _entry)


def get_flow(name: str) -> FlowEntry:
    return FLOWS.get(name)


def flow_names() -> list[str]:
    return FLOWS.names()
