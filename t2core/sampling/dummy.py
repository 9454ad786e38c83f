"""`dummy` sampler for tests: answers from a function of the prompt, no model involved."""

from __future__ import annotations

from collections.abc import Callable

from t2core.sampling.base import Completion, GenerationConfig, Sampler, register_sampler


class DummySampler(Sampler):
    name = "dummy"

    def __init__(self, respond: Callable[[list[dict[str, str]]], str] | None = None, **_: object) -> None:
        self.respond = respond or (lambda messages: "")
        self.calls = 0

    def generate(self, conversations, cfg: GenerationConfig, progress=None, svf=None):
        self.check_svf(svf)
        out = []
        for conv in conversations:
            text = self.respond(conv)
            out.append(Completion(text, sum(len(m["content"]) for m in conv), len(text)))
            self.calls += 1
            if progress:
                progress(1)
        return out


register_sampler("dummy", DummySampler)
