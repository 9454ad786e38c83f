"""Chat requests answered the two-pass way, for a server (`t2 api`, paper §3.3 applied to traffic).

Why one more entry point: `ask` answers one question and two-pass evaluation a task slice; a server answers
many chats at once, each naming how it wants to be answered: `t2-auto` (pass 1 by the profile's strategy
picks the expert or mixture, pass 2 answers with it), an expert by name (its training task or its id: no
pass 1), or `base`. The pieces are the same as theirs: the strategy's `decide` over a batch of questions,
`applied` for the weights of each decision, the sampler's `generate` for each group of requests answered
with the same weights. Nothing is recorded in the catalog.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from t2core.adapt import ExpertSet, strategy_class
from t2core.adapt.dispatch import Decision
from t2core.adapt.twopass import applied, decision_variants
from t2core.errors import ConfigError
from t2core.experts import ExpertRef
from t2core.models.registry import LoadedModel
from t2core.sampling import GenerationConfig, RowExperts, SVFWeights, make_sampler
from t2core.svf.bank import ExpertBank, one_hot
from t2core.variants import describe_ref
from t2ops.adaptation import AdaptRequest, _strategy, check_ask_strategy

AUTO, BASE = "t2-auto", "base"


@dataclass(frozen=True)
class Request:
    messages: tuple[dict[str, str], ...]  # the chat, OpenAI style: role and content of each turn
    model: str  # t2-auto | base | an expert's name or id
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0


@dataclass(frozen=True)
class Reply:
    text: str
    model: str  # what answered, as the response names it: t2-auto:<expert name>, base, or the expert asked for
    applies: str  # in words: "base weights", "expert svf:…", "mixture 0.3×svf:… + 0.7×svf:…"
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length
    pass1_s: float
    pass2_s: float


class Responder:
    """The loaded model, its experts and the strategy of pass 1, set up once; `respond` answers batches."""

    def __init__(self, req: AdaptRequest, loaded: LoadedModel, names: dict[str, str]) -> None:
        """`req` carries the strategy, its experts and pass-1 settings (as `ask` takes them); `names` maps
        each servable name (an expert's training task) to its expert id."""
        check_ask_strategy(req.strategy)
        self.req, self.loaded = req, loaded
        kind = strategy_class(req.strategy)
        experts = {e: ExpertRef.resolve(e) for e in dict.fromkeys([*req.experts, *names.values()])}
        for e in experts.values():
            e.check_model(loaded.weights_hash)
        self.names = {**{n: experts[i].id for n, i in names.items()}, **{e.id: e.id for e in experts.values()}}
        self.expert_set = ExpertSet.of(kind, tuple(experts[e] for e in req.experts))
        cls_ref = describe_ref(loaded.weights_hash, req.cls_expert) if "cls-expert" in kind.needs else None
        self.sampler = make_sampler(req.sampler, loaded=loaded)
        # pass 1 in this process: a choice among a few categories reuses the question's cache across them on hf,
        # where a vLLM server recomputes the log-probabilities of every prompt position (5x slower on smol,
        # docs/serving.md); the answer (pass 2) is the engine's
        self.pass1_sampler = make_sampler("hf", loaded=loaded) if self.sampler.receives_svf else self.sampler
        self.strategy = _strategy(req, cls_ref, loaded, None, 1, req.eval.generation.dtype)
        self.variant_of = decision_variants(loaded, {e.id: str(e.path) for e in experts.values()},
                                            req.eval.generation.dtype)
        self.task_of = {e.id: e.header.task for e in experts.values()}

    def models(self) -> list[str]:
        """What a request's `model` may name: t2-auto, base, each expert's task name and id."""
        return [AUTO, BASE, *self.names]

    def check(self, model: str) -> str:
        if model not in (AUTO, BASE) and model not in self.names:
            raise ConfigError(f"model {model!r} is not served here; the models are {', '.join(self.models())}.")
        return model

    def respond(self, requests: list[Request], stream: Callable[[int, str], None] | None = None) -> list[Reply]:
        """Answer a batch: pass 1 for the t2-auto requests at once, then one generation per group of
        requests answered with the same weights and settings. `stream(i, text)` receives request i's text as
        it is generated (the hf sampler; other samplers give it whole at the end)."""
        decisions, pass1 = self.decide(requests)
        auto = {i for i, r in enumerate(requests) if r.model == AUTO}
        # one generation per group of requests with the same settings and, unless the sampler answers different
        # experts in one call at the cost of one (vLLM's per-request adapters), the same weights
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            d = decisions[i]
            weights = () if self.sampler.mixes_rows else (d.expert_ids, d.alphas)
            groups.setdefault((*weights, r.max_tokens, r.temperature, r.top_p), []).append(i)
        replies: dict[int, Reply] = {}
        gen0 = self.req.eval.generation
        for key, idx in groups.items():
            max_tokens, temperature, top_p = key[-3:]
            gen = replace(gen0, max_new_tokens=max_tokens, temperature=temperature, top_p=top_p,
                          batch_size=max(len(idx), 1))
            t1 = time.perf_counter()
            outs = self._generate([requests[i] for i in idx], [decisions[i] for i in idx], gen, stream, idx)
            pass2 = (time.perf_counter() - t1) / len(idx)
            for i, out in zip(idx, outs, strict=True):
                d = decisions[i]
                replies[i] = Reply(out.text, self.name(requests[i].model, d), d.applies, out.n_prompt_tokens,
                                   out.n_new_tokens, "length" if out.n_new_tokens >= max_tokens else "stop",
                                   pass1 if i in auto else 0.0, pass2)
        return [replies[i] for i in range(len(requests))]

    def decide(self, requests: list[Request]) -> tuple[list[Decision], float]:
        """Pass 1 for a batch: each request's decision (t2-auto's by the strategy, at once; an expert or base
        as asked) and pass 1's time per request of the batch (s). `t2 api --backend vllm` answers with these
        decisions on vLLM's own server; `respond` answers with them here."""
        for r in requests:
            self.check(r.model)
        auto = [i for i, r in enumerate(requests) if r.model == AUTO]
        t0 = time.perf_counter()
        decided = self.strategy.decide(self.pass1_sampler, [_question(requests[i]) for i in auto], self.expert_set) \
            if auto else []
        pass1 = (time.perf_counter() - t0) / max(len(requests), 1)
        decisions: dict[int, Decision] = dict(zip(auto, decided, strict=True))
        for i, r in enumerate(requests):
            if r.model != AUTO:
                decisions[i] = Decision("asked", () if r.model == BASE else (self.names[r.model],))
        return [decisions[i] for i in range(len(requests))], pass1

    def vectors(self, decision: Decision) -> SVFWeights | None:
        """The multipliers pass 2 applies for `decision` (one expert's, or the mixture Σ αₖ zₖ: SVF is linear
        in z, paper §3.3); None for the base weights."""
        variant = applied(decision, self.variant_of)
        return None if variant.weights is None else variant.vectors()

    def _rows(self, decisions: list[Decision]) -> RowExperts:
        """Each request's weights as a row of one call (`Sampler.mixes_rows`): a bank of the distinct
        decisions' vectors (the base weights as all-ones multipliers), one-hot per request."""
        firsts = {(d.expert_ids, d.alphas): d for d in reversed(decisions)}
        keys = list(dict.fromkeys((d.expert_ids, d.alphas) for d in decisions))
        vecs = [applied(firsts[k], self.variant_of).apply_with(self.sampler).get("svf") for k in keys]
        # every matrix any of them changes (experts of other target specs: the others leave it as it is, m = 1)
        shapes = {n: m for v in vecs if v is not None for n, m in v.scale.items()}
        whole = [SVFWeights(self.loaded.weights_hash, {n: v.scale[n] if v is not None and n in v.scale
                                                       else torch.ones_like(m) for n, m in shapes.items()})
                 for v in vecs]
        bank = ExpertBank.of(whole)
        return RowExperts(bank, one_hot([keys.index((d.expert_ids, d.alphas)) for d in decisions], bank.k))

    def _generate(self, reqs: list[Request], decisions: list[Decision], gen: GenerationConfig, stream,
                  idx: list[int]):
        if len({(d.expert_ids, d.alphas) for d in decisions}) > 1:  # only where the sampler mixes rows
            ctx, kw = contextlib.nullcontext(), {"rows": self._rows(decisions)}
        else:
            ctx, kw = applied(decisions[0], self.variant_of).using(self.sampler)
        chats = [[dict(m) for m in r.messages] for r in reqs]
        incremental = stream is not None and self.sampler.name == "hf"
        if incremental:
            kw = {**kw, "stream": lambda j, text: stream(idx[j], text)}
        with ctx:
            outs = self.sampler.generate(chats, gen, **kw)
        if stream is not None and not incremental:
            for j, out in enumerate(outs):
                stream(idx[j], out.text)
        return outs

    def name(self, model: str, d: Decision) -> str:
        """What answered, as the response's `model` says it (t2-auto:<task>, t2-auto:base, t2-auto:mixture)."""
        if model != AUTO:
            return model
        if not d.expert_ids:
            return f"{AUTO}:{BASE}"
        if not d.alphas:
            return f"{AUTO}:{self.task_of.get(d.expert_ids[0], d.expert_ids[0])}"
        return f"{AUTO}:mixture"


def _question(r: Request) -> str:
    """What pass 1 classifies: the last user turn (the paper's pass 1 sees the question)."""
    users = [m["content"] for m in r.messages if m.get("role") == "user"]
    if not users:
        raise ConfigError("a chat with no user message has no question for pass 1; add one.")
    return users[-1]
