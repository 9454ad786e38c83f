"""`dummy` sampler for tests: answers from a function of the prompt, no model involved.

`choose` (choice tasks) picks the candidate equal to `respond(conversation)`, else the
first one, or whatever `pick(conversation, candidates)` returns when that is given.
"""

from __future__ import annotations

from collections.abc import Callable

from t2core.sampling.base import Completion, GenerationConfig, Sampler, check_candidates, register_sampler


class DummySampler(Sampler):
    name = "dummy"

    def __init__(self, respond: Callable[[list[dict[str, str]]], str] | None = None,
                 pick: Callable[[list[dict[str, str]], tuple[str, ...]], int] | None = None, **_: object) -> None:
        self.respond = respond or (lambda messages: "")
        self.pick = pick
        self.calls = 0

    def generate(self, conversations, cfg: GenerationConfig, progress=None, svf=None, rows=None):
        self.check_svf(svf)
        self.check_rows(rows, len(conversations))
        out = []
        for conv in conversations:
            text = self.respond(conv)
            out.append(Completion(text, sum(len(m["content"]) for m in conv), len(text)))
            self.calls += 1
            if progress:
                progress(1)
        return out

    def choose(self, conversations, candidates, cfg: GenerationConfig, progress=None, svf=None, rows=None):
        self.check_svf(svf)
        self.check_rows(rows, len(conversations))
        check_candidates(conversations, candidates)
        out = []
        for conv, cands in zip(conversations, candidates, strict=True):
            if self.pick is not None:
                j = self.pick(conv, cands)
            else:
                text = self.respond(conv)
                j = cands.index(text) if text in cands else 0
            out.append(Completion(cands[j], sum(len(m["content"]) for m in conv), 0, choice=j))
            self.calls += 1
            if progress:
                progress(1)
        return out


register_sampler("dummy", DummySampler)
