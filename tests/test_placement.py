"""Device placement checked without a GPU (issue 35 §2): the real code paths with the model on `meta`.

Each test runs a path of t2 with the model's weights, and the factors U, s, V of its targeted matrices, on
PyTorch's `meta` device, under `OnMeta` (tests/meta_device.py): any op that meets a tensor left on the CPU
raises, as it would on a GPU, and the host -> device copies are counted. Two models: the tiny random Llama
(its SVD computed on the CPU first, then read from the store like any run's) and Llama-3-8B's shapes built
from a config only (no weights; its factors are `meta` tensors of the right shapes, put in place of the file
read: no SVD of an 8B model is computed).

What `meta` cannot run, and how each test isolates it (docs/gpu.md, "What meta cannot check"):
- values: a host read of a device value (`.item()`, `float()`, `bool()`, `.tolist()`) returns 0 / False
  (the guard fakes it), and a device -> host copy returns zeros. So losses, rewards, gradient norms,
  accuracies, CEM fitness and the experts written are not checked here, only where their tensors live;
- text generation: `model.generate` loops until its stopping test, a value meta does not have; the
  `TeacherForced` sampler below replaces it by one forward of the prompt and a fixed answer, with the hf
  sampler's own per-row experts and precision contexts (`HFSampler._rows`, `_autocast`). Candidate scoring
  (`HFSampler.choose`) runs unchanged;
- autocast: PyTorch has no autocast for `meta`, so every path runs with dtype float32; the bf16 pieces are
  checked on the CPU (`test_z_gradient_is_reduced_in_fp32_under_bf16_autocast`) and by dtype on meta
  (bf16-stored factors).
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from t2core.adapt import twopass
from t2core.adapt.cem import CEMConfig
from t2core.adapt.fewshot import FewShotConfig
from t2core.adapt.search import SearchPlan, search
from t2core.artifacts import ArtifactStore
from t2core.errors import ConfigError
from t2core.experts import ExpertRef
from t2core.logprobs import pack
from t2core.models import load_model
from t2core.models.registry import LoadedModel
from t2core.models.targets import family_of, find_targets
from t2core.sampling.base import Completion, GenerationConfig
from t2core.sampling.hf import HFSampler, render_prompt
from t2core.svd import ensure_svd
from t2core.svf import ExpertHeader, SVFConfig, SVFPolicy, attached, materialised, placement, save_expert
from t2core.svf.apply import _ScaleFP32Grad, scaled
from t2core.svf.bank import ExpertBank, per_row
from t2core.svf.placement import place_bank, place_policy, place_svd, resident_svd
from t2core.tasks import get_task
from t2core.tasks.base import ChoiceSample, Dataset, MathSample
from t2core.training.config import RLConfig
from t2core.training.ntp import NTPConfig
from t2core.training.reinforce import ReinforceTrainer
from t2core.training.svf_ntp import train_svf_ntp
from t2core.transfer import transfer_expert
from t2core.variants import VariantRef, resolve_variant
from t2ops.model import ident_of
from t2ops.transfer import destination
from tests.meta_device import DeviceMix, OnMeta, llama3_8b_config, meta_factors, meta_model, mistral_7b_config

META = torch.device("meta")
MATH = [MathSample("m0", "What is 2 + 3?", "5", "2 + 3 = 5"), MathSample("m1", "What is 4 - 1?", "3", "4 - 1 = 3")]
CHOICE = [ChoiceSample("c0", "Which colour is grass?", ("A", "B", "C"), ("red", "green", "blue"), "B"),
          ChoiceSample("c1", "Which is a number?", ("A", "B"), ("seven", "tree"), "A")]


# -- the models -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_cpu():
    return load_model("tiny-random", seed=0)


def on_meta(loaded: LoadedModel, targets: tuple[str, ...] = ("mlp",)) -> LoadedModel:
    """A copy of `loaded` on `meta` (same weights hash), its SVD computed from the CPU weights into this
    test's store first, so `resident_svd` reads the file and copies the factors to the device as a run does."""
    for spec in targets:
        ensure_svd(loaded, spec)
    return LoadedModel(loaded.alias, copy.deepcopy(loaded.model).to(META), loaded.tokenizer, loaded.weights_hash,
                       loaded.source, family=loaded.family, seed=loaded.seed)


def config_only(alias: str, config, tokenizer) -> LoadedModel:
    """A model of `config`'s shapes on `meta`, no weights (the tiny byte-level tokenizer: its ids are valid)."""
    model = meta_model(config)
    return LoadedModel(alias, model, tokenizer, f"meta:{alias}", "config only", family=family_of(model))


@pytest.fixture(scope="module")
def llama8b(tiny_cpu):
    return config_only("llama3-8b", llama3_8b_config(), tiny_cpu.tokenizer)


@pytest.fixture(autouse=True)
def config_only_factors(monkeypatch):
    """For config-only models, the factors `resident_svd` would read from the store are meta tensors of the
    right shapes (the file read is the only part replaced: the placement and the per-load cache are real)."""
    real = placement._load

    def load(loaded, targets, store, dtype):
        if not loaded.weights_hash.startswith("meta:"):
            return real(loaded, targets, store, dtype)
        names = find_targets(loaded.model, loaded.family, targets)
        return place_svd(meta_factors(loaded.model, names), loaded.model, dtype)

    monkeypatch.setattr(placement, "_load", load)


@pytest.fixture(params=["tiny", "llama3-8b"])
def model(request, tiny_cpu, llama8b) -> LoadedModel:
    return on_meta(tiny_cpu) if request.param == "tiny" else llama8b


def factor_shapes(svd) -> tuple[set[tuple[int, ...]], int]:
    """The shapes of every U and V, and the smallest of their sizes (to tell them from token ids)."""
    shapes = {tuple(t.shape) for u, _, v in svd.values() for t in (u, v)}
    return shapes, min(u.numel() for u, _, v in svd.values() for u in (u, v))


def copied_once(guard: OnMeta, loaded: LoadedModel) -> bool:
    """Each U and V went host -> device exactly once under `guard` (for a config-only model: never, its
    factors are born on meta), whatever ran after: no copy per step, micro-batch, swap or sampler call."""
    svd = resident_svd(loaded)
    expected = 0 if loaded.weights_hash.startswith("meta:") else 2 * len(svd)
    return guard.copies_of(*factor_shapes(svd)) == expected


def on_device(params) -> None:
    for p in params:
        assert p.device == META and p.dtype == torch.float32, (p.device, p.dtype)
        assert p.grad is not None and p.grad.device == META and p.grad.dtype == torch.float32


# -- a sampler without the generation loop ----------------------------------------------------------------

class TeacherForced(HFSampler):
    """The hf sampler with `model.generate` replaced by one forward of each prompt and a fixed answer
    (`answer(conversation index)`): meta cannot run the generation loop (its stopping test reads values).
    The per-row experts (`_rows`) and the precision context (`_autocast`) are the hf sampler's own."""

    name = "teacher-forced"

    def __init__(self, loaded, answer=lambda i: "The answer is: 5") -> None:
        super().__init__(loaded)
        self.answer = answer

    @torch.no_grad()
    def generate(self, conversations, cfg, progress=None, svf=None, rows=None):
        self.check_svf(svf)
        self.check_rows(rows, len(conversations))
        tok, model = self.loaded.tokenizer, self.loaded.model
        dev = next(model.parameters()).device
        out = []
        for lo in range(0, len(conversations), cfg.batch_size):
            idx = list(range(lo, min(lo + cfg.batch_size, len(conversations))))
            prompts = [tok(render_prompt(tok, conversations[i]), add_special_tokens=False)["input_ids"] for i in idx]
            texts = [self.answer(i) for i in idx]
            answers = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
            ids, attn, _ = pack(prompts, answers, tok.pad_token_id)
            with self._rows(rows, idx), self._autocast(cfg, dev):
                model(input_ids=ids.to(dev), attention_mask=attn.to(dev))
            out += [Completion(t, len(p), len(a), p, a) for t, p, a in zip(texts, prompts, answers, strict=True)]
        return out


def planned(task: str, samples) -> tuple:
    return Dataset(task, "train", list(samples), {"meta": "0"}, len(samples)), {"meta": "0"}, f"meta-{task}"


def write_expert(path, loaded: LoadedModel, param: str, seed: int) -> ExpertRef:
    """An expert file for `loaded` (z perturbed from its initial value), verified as any expert is."""
    ranks = {n: min(m.weight.shape) for n, m in find_targets(loaded.model, loaded.family, "mlp").items()}
    cfg = SVFConfig(param=param)
    policy = SVFPolicy(ranks, cfg, seed=seed)
    g = torch.Generator().manual_seed(seed)
    policy.load_raw_state({n: v + 0.05 * torch.randn(v.shape, generator=g) for n, v in policy.raw_state().items()})
    save_expert(path, policy, ExpertHeader(loaded.weights_hash, loaded.alias, "gsm8k", asdict(cfg), ranks))
    return ExpertRef.resolve(str(path))


# -- the guard itself ---------------------------------------------------------------------------------------

def test_guard_catches_what_meta_alone_lets_through():
    """A matmul of a meta and a CPU tensor gives a meta result in plain PyTorch (where CUDA would raise):
    the guard raises, as it does for a random op with a generator of another device."""
    m, c = torch.ones(3, 3, device=META), torch.ones(3, 3)
    assert (m @ c).device == META  # the gap
    with OnMeta(), pytest.raises(DeviceMix, match="mixes tensors on devices cpu, meta"):
        m @ c
    with OnMeta(), pytest.raises(DeviceMix, match="generator on cpu"):
        torch.multinomial(torch.ones(3, device=META), 1, generator=torch.Generator())
    with OnMeta() as g:
        m + torch.tensor(2.0)  # a CPU scalar is fine, as on CUDA
        m[torch.tensor([0, 2])]  # CPU indices too
        assert float(m.sum()) == 0.0 and g.reads["__float__"] == 1  # a host read: faked, counted
        assert not bool(torch.all(m == 1)) and bool(torch.isfinite(m).all())  # False, but finiteness holds
        m.to("cpu")
        c.to(META)
    assert g.d2h == [(3, 3)] and g.h2d == [(3, 3)]


# -- the policy on the device of its weights -----------------------------------------------------------------

def test_policy_left_on_the_cpu_fails(model):
    """What issue 35 found: an SVF policy built on the CPU, the model elsewhere. `attached` refuses it in one
    line; past that check (an SVFLinear used directly), the guard raises at the first op that mixes them."""
    svd = resident_svd(model)
    policy = SVFPolicy({n: int(s.shape[0]) for n, (_, s, _) in svd.items()})
    with pytest.raises(ConfigError, match="is on cpu, the weight it changes on meta: place the policy"):
        with attached(model.model, svd, policy):
            pass
    name = next(iter(svd))
    layer = placement_free_linear(model, svd, policy, name)
    with OnMeta(), pytest.raises((DeviceMix, RuntimeError), match="device"):
        layer(torch.ones(1, 2, layer.v.shape[0], device=META))


def placement_free_linear(model, svd, policy, name):
    from t2core.svf.apply import SVFLinear

    return SVFLinear(model.model.get_submodule(name), *svd[name], policy=policy, name=name, mode="factored")


def test_cpu_factors_are_refused(tiny_cpu):
    """Factors on the host with the model on the device: one clear error, not a copy at every use."""
    meta = on_meta(tiny_cpu)
    from t2core.svd import load_svd

    svd = load_svd(ensure_svd(tiny_cpu, "mlp"))  # the CPU copy
    policy = place_policy(SVFPolicy({n: int(s.shape[0]) for n, (_, s, _) in svd.items()}), meta.model)
    with pytest.raises(ConfigError, match="SVD factor U of .* is on cpu, its weight on meta: take the factors"):
        with attached(meta.model, svd, policy):
            pass


# -- §2: each path, on meta ------------------------------------------------------------------------------------

def test_reinforce_step(model):
    """One REINFORCE step of the generate rollout (the paper's): W' materialised for the rollouts, the
    teacher-forced "generation" (see the module docstring), then the differentiable forward, the KL to the
    base, backward over two micro-batches, the clip and the optimizer step. The reward is the task's check
    of a fixed answer (a dummy reward); its value, the loss and the norm are faked reads (not checked)."""
    cfg = RLConfig(task="gsm8k", batch_size=2, micro_batch_size=1, kl_coef=0.1, steps=1, valid_limit=1)
    g = _one_reinforce_step(model, cfg, TeacherForced(model), planned("gsm8k", MATH))
    # the rollout's W' was written into the weights in place: each original to the host and back, once
    swapped = sorted(tuple(model.model.get_submodule(n).weight.shape) for n in resident_svd(model))
    assert sorted(g.h2d_into) == swapped and sorted(s for s in g.d2h if s in swapped) == swapped


def _one_reinforce_step(model, cfg, sampler, plan) -> OnMeta:
    """One REINFORCE step on meta; the policy must end on the weights' device, U/V copied once."""
    with OnMeta() as g:
        trainer = ReinforceTrainer(model, resident_svd(model), cfg, sampler=sampler, planned=plan)
        trainer.step(1)
    on_device(trainer.adapter.parameters())
    assert copied_once(g, model)
    return g


def test_choice_scoring_step(model):
    """One REINFORCE step of the choice rollout: the candidates scored by the differentiable policy (shared
    prefix, KV cache, per-candidate forwards), an option drawn at temperature 1 from the host generator, the
    KL over the candidates. The draw itself reads values: here it is made from zeros (uniform)."""
    cfg = RLConfig(task="arc_easy_cloze", batch_size=2, micro_batch_size=1, kl_coef=0.1, steps=1, valid_limit=1,
                   temperature=1.0)
    _one_reinforce_step(model, cfg, HFSampler(model), planned("arc_easy_cloze", CHOICE))


def test_svf_ntp_step(model):
    """SVF-NTP end to end (`train_svf_ntp`): factors and policy placed, one step over two micro-batches, the
    expert written. Its vectors are read back from the device as zeros (a faked copy), so the file is not
    checked; for the tiny model, U and V were copied to the device exactly once each."""
    cfg = NTPConfig(task="gsm8k", method="svf", steps=1, batch_size=2, micro_batch_size=1, max_len=96)
    ds = Dataset("gsm8k", "train", MATH, {"meta": "0"}, 2)
    with OnMeta() as g:
        res = train_svf_ntp(model, cfg, ds, f"meta-ntp-{model.alias}", ArtifactStore())
    assert not res.reused and res.path.is_file() and len(res.losses) == 1
    assert copied_once(g, model)


def test_pass2_mixture(model, tmp_path):
    """Pass 2 of two-pass inference with a mixture z' = Σ α_k z_k of a direct and a sigmoid expert (the latter
    rescales by Σs / Σ(s ⊙ z): s and z must meet on the device), then with one sigmoid expert: the variant
    resolved as two-pass resolves it, pass 2 answered through a sampler (a generated task and a choice task,
    the latter by the hf sampler's own candidate scoring), and the expert sent as vectors (`vectors()`)."""
    refs = [write_expert(tmp_path / f"e{i}.safetensors", model, p, i) for i, p in enumerate(("direct", "sigmoid"))]
    mix = VariantRef("svf", tuple(r.id for r in refs), (0.3, 0.7), paths=tuple(str(r.path) for r in refs))
    one = VariantRef("svf", (refs[1].id,), paths=(str(refs[1].path),))
    gen = GenerationConfig(max_new_tokens=4, batch_size=2)
    with OnMeta() as g:
        for ref in (mix, one):
            variant = resolve_variant(model, ref)
            twopass.answer(get_task("gsm8k"), MATH, TeacherForced(model), gen, variant)
            picked = twopass.answer(get_task("arc_easy_cloze"), CHOICE, HFSampler(model), gen, variant)
            vectors = variant.vectors()
    assert len(picked) == 2 and all(v.device.type == "cpu" for v in vectors.scale.values())  # vectors: host
    assert copied_once(g, model)


def test_cem_generation(model, tmp_path):
    """A few-shot search (`adapt.search.search`) of one CEM generation of 2 candidates over 2 experts: the
    bank placed, the population scored in one batch with a mixture per row (`per_row`, factored), the
    paper's log-likelihood tie-break (each candidate's W' materialised from its mixture), the refit of the
    best alone, the mixture stored. Fitness values are faked reads: which candidate wins is not checked."""
    refs = tuple(write_expert(tmp_path / f"e{i}.safetensors", model, "direct", i) for i in range(2))
    cfg = FewShotConfig(task="gsm8k", shots=2, cem=CEMConfig(population=2, elite_ratio=0.5, generations=1), batch_size=4,
                        tie_break="loglik")
    plan = SearchPlan(f"meta-search-{model.alias}", refs, Dataset("gsm8k", "train", MATH, {"meta": "0"}, 2), "mlp")
    with OnMeta() as g:
        res = search(model, cfg, plan, TeacherForced(model, lambda i: f"The answer is: {MATH[i % 2].answer}"),
                     ArtifactStore())
    assert res.expert.path.is_file() and res.state.generation == 1
    assert copied_once(g, model)


@pytest.mark.parametrize("pair", ["tiny->tiny-deep", "llama3-8b->mistral-7b"])
def test_transfer(pair, tiny_cpu, llama8b, tmp_path):
    """An expert moved to another model (paper §4.4; the user's `t2 transfer --src llama3-8b --dst
    mistral-7b`) and applied there: the mapping and the control run on the host (small vectors, no model),
    the destination's expert is resolved and answers on the destination's device. Tiny: across shapes
    (relative depth, resampled ranks); 8B: Llama-3-8B -> Mistral-7B's shapes (matrix by matrix)."""
    if pair.startswith("tiny"):
        src, dst = tiny_cpu, on_meta(load_model("tiny-random-deep", seed=0))
    else:
        src, dst = llama8b, config_only("mistral-7b", mistral_7b_config(), tiny_cpu.tokenizer)
    source = write_expert(tmp_path / "src.safetensors", src, "direct", 0)
    with OnMeta():
        policy, header = transfer_expert(source, destination(ident_of(dst), "mlp"), "ordered")
        ref = ExpertRef.resolve(str(save_expert(tmp_path / "dst.safetensors", policy, header)))
        variant = resolve_variant(dst, VariantRef("svf", (ref.id,), paths=(str(ref.path),)))
        twopass.answer(get_task("gsm8k"), MATH, TeacherForced(dst), GenerationConfig(max_new_tokens=4), variant)
    assert header.config["transfer"]["mapping"]["kind"] == ("relative-depth" if pair.startswith("tiny")
                                                            else "same-shapes")


# -- the apply paths at Llama-3-8B's shapes, both modes, bf16-stored factors ------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("mode", ["factored", "materialise"])
def test_attached_8b(llama8b, mode, dtype):
    """The differentiable forward and backward at 8B's shapes with U, V stored in `dtype`: z stays float32
    and so does its gradient (meta carries dtypes: this much of the bf16 story is checked here)."""
    svd = resident_svd(llama8b, dtype=dtype)
    assert all(u.dtype == (torch.bfloat16 if dtype == "bfloat16" else torch.float32) and s.dtype == torch.float32
               for u, s, _ in svd.values())
    policy = place_policy(SVFPolicy({n: int(s.shape[0]) for n, (_, s, _) in svd.items()},
                                    SVFConfig(param="sigmoid", mode=mode)), llama8b.model)
    ids = torch.ones(2, 9, dtype=torch.long)
    with OnMeta(), attached(llama8b.model, svd, policy):
        llama8b.model(input_ids=ids.to(META), labels=ids.to(META)).loss.backward()
    on_device(policy.parameters())


@pytest.mark.parametrize("mode", ["factored", "grouped"])
def test_per_row_and_materialised_8b(llama8b, mode, tmp_path):
    """Per-row mixtures (the CEM batch and the dispatcher's) in both modes, and a materialised expert, at 8B's
    shapes; the per-row weights come from the host, as a CEM population does."""
    svd = resident_svd(llama8b)
    experts = [place_policy(SVFPolicy({n: int(s.shape[0]) for n, (_, s, _) in svd.items()}, seed=i), llama8b.model)
               for i in range(3)]
    from t2core.svf import svf_weights

    with OnMeta():
        bank = place_bank(ExpertBank.of([svf_weights(p, svd, llama8b.weights_hash) for p in experts]), llama8b.model)
        weights = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])  # (B, K) on the host
        with torch.no_grad(), per_row(llama8b.model, svd, bank, weights, mode=mode):
            llama8b.model(input_ids=torch.ones(2, 5, dtype=torch.long).to(META))
        with torch.no_grad(), materialised(llama8b.model, svd, experts[1]):
            llama8b.model(input_ids=torch.ones(1, 5, dtype=torch.long).to(META))
        row = bank.mixture(weights[1])
    assert all(v.device.type == "cpu" for v in row.scale.values())  # what a vLLM server is sent


# -- U and V once per load; the artifact verified once per process -------------------------------------------

def test_factors_copied_once_per_load_not_per_micro_batch(tiny_cpu, monkeypatch, tmp_path):
    """U and V go to the device when the model's factors are first asked for (one copy each), and never
    again: not at a second `resident_svd`, not at each `attached()` (each micro-batch), not at a REINFORCE step
    of three micro-batches; the wrappers hold the resident tensors themselves. The SVD file is hashed once."""
    from t2core.artifacts import ArtifactStore as Store

    hashed = []
    real_verify = Store.verify
    monkeypatch.setattr(Store, "verify", lambda self, kind, key: (hashed.append(key), real_verify(self, kind, key))[1])
    meta = on_meta(tiny_cpu)  # computes the SVD: its write does not count as a verification
    expert = write_expert(tmp_path / "e.safetensors", meta, "direct", 3)
    hashed.clear()
    with OnMeta() as g:
        svd = resident_svd(meta)
        shapes, smallest = factor_shapes(svd)
        assert g.copies_of(shapes, smallest) == 2 * len(svd)  # each U and each V, once
        assert resident_svd(meta) is svd
        policy = place_policy(SVFPolicy({n: int(s.shape[0]) for n, (_, s, _) in svd.items()}), meta.model)
        ids = torch.ones(1, 6, dtype=torch.long)
        for _ in range(3):  # three micro-batches
            with attached(meta.model, svd, policy) as m:
                assert all(m.get_submodule(n).u is svd[n][0] and m.get_submodule(n).v is svd[n][2] for n in svd)
                m(input_ids=ids.to(META), labels=ids.to(META)).loss.backward()
        cfg = RLConfig(task="gsm8k", batch_size=3, micro_batch_size=1, steps=1, valid_limit=1)
        ReinforceTrainer(meta, resident_svd(meta), cfg, sampler=TeacherForced(meta),
                         planned=planned("gsm8k", [*MATH, MATH[0]])).step(1)
        with resolve_variant(meta, VariantRef("svf", (expert.id,), paths=(str(expert.path),))).weights():
            pass  # an expert swap (pass 2, validation, the rollouts' W')
        assert g.copies_of(shapes, smallest) == 2 * len(svd)  # still once
    assert len(hashed) == 1  # the file hashed once in this process; later uses only stat it
    again = on_meta(tiny_cpu)  # another load of the same weights: its own copies, no new hash
    with OnMeta() as g2:
        assert resident_svd(again) is not svd
    assert g2.copies_of(shapes, smallest) == 2 * len(svd) and len(hashed) == 1


# -- the gradient of z in fp32 under bf16 autocast --------------------------------------------------------------

def test_z_gradient_is_reduced_in_fp32_under_bf16_autocast():
    """Issue 35: under bf16 autocast, `h * ss.to(bf16)` made autograd sum the gradient of s ⊙ z over every
    token in bf16 and round it to 8 bits. `scaled` sums it in float32: against a float64 sum of the same bf16
    products, it is ~1e-7 off where the bf16 rule is ~1e-3 off."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4096, 32, generator=g).to(torch.bfloat16)  # (tokens, r): Vᵀx under autocast
    up = torch.randn(4096, 32, generator=g).to(torch.bfloat16)  # the gradient arriving from above
    truth = (up.double() * a.double()).sum(0)
    ss = torch.rand(32, generator=g).requires_grad_()
    scaled(a, ss).backward(up)
    old = ss.detach().clone().requires_grad_()
    (a * old.to(torch.bfloat16)).backward(up)
    assert ss.grad.dtype == torch.float32
    err = lambda x: float((x.double() - truth).abs().max() / truth.abs().max())  # noqa: E731
    assert err(ss.grad) < 1e-6 < 1e-4 < err(old.grad), (err(ss.grad), err(old.grad))


def test_svf_linear_uses_the_fp32_reduction_under_autocast(tiny_cpu, monkeypatch):
    """In a bf16 autocast forward of the model (CPU), every targeted matrix scales through `_ScaleFP32Grad`,
    and z's gradient is float32."""
    from t2core.svd import load_svd

    calls = []
    real = _ScaleFP32Grad.apply
    monkeypatch.setattr(_ScaleFP32Grad, "apply", lambda *a: (calls.append(1), real(*a))[1])
    svd = load_svd(ensure_svd(tiny_cpu, "mlp"))
    policy = place_policy(SVFPolicy({n: int(s.shape[0]) for n, (_, s, _) in svd.items()}), tiny_cpu.model)
    ids = torch.ones(1, 6, dtype=torch.long)
    with attached(tiny_cpu.model, svd, policy) as m, torch.autocast("cpu", dtype=torch.bfloat16):
        m(input_ids=ids, labels=ids).loss.backward()
    assert len(calls) == len(svd)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in policy.parameters())


def test_bf16_stored_factors_agree_with_fp32(tiny_cpu):
    """U and V stored in bf16 (half the memory; for a GPU run under bf16 autocast) give the fp32 forward to
    bf16's rounding, on the CPU with values: factored, materialise mode, and a materialised expert."""
    fp32, bf16 = resident_svd(tiny_cpu), resident_svd(tiny_cpu, dtype="bfloat16")
    assert bf16 is not fp32 and all(u.dtype == torch.bfloat16 and s.dtype == torch.float32 for u, s, _ in bf16.values())
    ids = torch.randint(0, 200, (2, 7), generator=torch.Generator().manual_seed(0))
    for mode in ("factored", "materialise"):
        policy = place_policy(SVFPolicy({n: int(s.shape[0]) for n, (_, s, _) in fp32.items()}, SVFConfig(mode=mode),
                                        seed=1), tiny_cpu.model)
        policy.load_raw_state({n: v * 1.1 for n, v in policy.raw_state().items()})
        outs = []
        for svd in (fp32, bf16):
            with torch.no_grad(), attached(tiny_cpu.model, svd, policy):
                outs.append(tiny_cpu.model(input_ids=ids).logits)
            with torch.no_grad(), materialised(tiny_cpu.model, svd, policy):
                outs.append(tiny_cpu.model(input_ids=ids).logits)
        scale = outs[0].abs().max()
        assert float((outs[0] - outs[1]).abs().max()) < 1e-4 * scale  # fp32: the two applications agree
        assert float((outs[2] - outs[0]).abs().max()) < 3e-2 * scale and float((outs[3] - outs[0]).abs().max()) < 3e-2 * scale


def test_bf16_stored_factors_are_exact_under_a_bf16_forward(tiny_cpu):
    """Where the forward computes in bf16 (autocast, the smol profile on a bf16 CPU), U and V stored in bf16 give
    the very numbers of float32 ones (issue 43: `factor_dtype="auto"`): autocast casts them to bf16 for every
    matmul, and an expert's W' is built in bf16. Factored: the logits and z's gradient, bit for bit;
    materialised in bf16: the logits, bit for bit."""
    fp32, bf16 = resident_svd(tiny_cpu), resident_svd(tiny_cpu, dtype="bfloat16")
    ids = torch.randint(0, 200, (2, 7), generator=torch.Generator().manual_seed(0))
    policy = place_policy(SVFPolicy({n: int(s.shape[0]) for n, (_, s, _) in fp32.items()}, seed=1), tiny_cpu.model)
    policy.load_raw_state({n: v * 1.1 for n, v in policy.raw_state().items()})
    logits, grads, merged = [], [], []
    for svd in (fp32, bf16):
        policy.zero_grad(set_to_none=True)
        with attached(tiny_cpu.model, svd, policy) as m, torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(input_ids=ids, labels=ids)
        out.loss.backward()
        logits.append(out.logits.detach())
        grads.append([p.grad.clone() for p in policy.parameters()])
        with torch.no_grad(), materialised(tiny_cpu.model, svd, policy, dtype="bfloat16"), \
                torch.autocast("cpu", dtype=torch.bfloat16):
            merged.append(tiny_cpu.model(input_ids=ids).logits)
    assert torch.equal(logits[0], logits[1])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
    assert torch.equal(merged[0], merged[1])


def test_the_auto_factor_dtype_follows_the_compute_dtype():
    from dataclasses import replace

    from t2core.profiles import get_profile

    smol = get_profile("smol")
    assert smol.factor_dtype == "auto"
    assert replace(smol, dtype="bfloat16").resolved_factor_dtype() == "bfloat16"
    assert replace(smol, dtype="float32").resolved_factor_dtype() == "float32"
    assert replace(smol, dtype="bfloat16").resolved_factor_dtype("float32") == "float32"  # a command's --dtype
    assert get_profile("paper").resolved_factor_dtype("float32") == "bfloat16"  # set, not auto: as given


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
def test_bf16_factors_leave_no_mapping_of_the_float32_file(tiny_cpu):
    """With U and V converted to bf16, nothing may keep the float32 file mapped: a singular-value vector kept
    as read (no copy needed for float32) held SmolLM2's whole 0.43 GB file resident (issue 43). With float32
    factors the file is what they compute from, and stays mapped."""
    import gc

    path = str(ensure_svd(tiny_cpu, "mlp").path)

    def mapped() -> bool:
        gc.collect()
        return path in Path("/proc/self/smaps").read_text()

    bf16 = resident_svd(tiny_cpu, dtype="bfloat16")
    assert bf16 and not mapped()
    fp32 = resident_svd(tiny_cpu)
    assert fp32 and mapped()


def test_a_factor_dtype_no_profile_knows_is_one_line():
    from dataclasses import replace

    from t2core.profiles import get_profile

    with pytest.raises(ConfigError, match="factor_dtype='fp16' must be auto, float32 or bfloat16"):
        replace(get_profile("smol"), factor_dtype="fp16")
