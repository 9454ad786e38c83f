"""SVF policy: exact identity at init, factored == materialised, expert files and their errors."""

from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_file

from t2core.errors import ArtifactError, ConfigError
from t2core.svd import ensure_svd, load_svd
from t2core.svf import (
    ExpertHeader,
    SVFConfig,
    SVFPolicy,
    attached,
    load_expert,
    materialised,
    ranks_of,
    save_expert,
)


@pytest.fixture(scope="module")
def svd_both(tiny):
    return load_svd(ensure_svd(tiny, "both"))


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _perturbed(svd, param, targets="both", seed=0):
    names = {k: v for k, v in ranks_of(svd).items() if targets == "both" or (".mlp." in k) == (targets == "mlp")}
    pol = SVFPolicy(names, SVFConfig(targets=targets, param=param))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in pol.params.values():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return pol


IDS = torch.randint(0, 250, (3, 17), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("param", ["direct", "sigmoid"])
@pytest.mark.parametrize("targets", ["mlp", "attn", "both"])
def test_factored_equals_materialised(tiny, svd_both, param, targets):
    pol = _perturbed(svd_both, param, targets)
    with attached(tiny.model, svd_both, pol, "factored"):
        f = _logits(tiny.model, IDS)
    with attached(tiny.model, svd_both, pol, "materialise"):
        m = _logits(tiny.model, IDS)
    with materialised(tiny.model, svd_both, pol):
        w = _logits(tiny.model, IDS)
    assert (f - m).abs().max() < 1e-4 and (f - w).abs().max() < 1e-4
    assert (f - _logits(tiny.model, IDS)).abs().max() > 1e-3  # the expert changes the model...
    base = _logits(tiny.model, IDS)
    with materialised(tiny.model, svd_both, pol):
        pass
    assert torch.equal(base, _logits(tiny.model, IDS))  # ...and the original weights come back exactly


def test_bf16_materialisation_matches_fp32_to_bf16_precision(tiny, svd_both):
    """The bf16 swap (for bf16-autocast generation) builds the same W' up to bf16 rounding."""
    pol = _perturbed(svd_both, "direct", "mlp")
    name = pol.names[0]
    mod = tiny.model.get_submodule(name)
    original = mod.weight.data.clone()
    ptr = mod.weight.data_ptr()
    with materialised(tiny.model, svd_both, pol):
        w32 = mod.weight.data.clone()
    with materialised(tiny.model, svd_both, pol, dtype="bfloat16"):
        w16 = mod.weight.data.clone()
        assert w16.dtype == original.dtype  # the model keeps its storage dtype
    assert not torch.equal(w32, original)
    assert (w16 - w32).abs().max() <= 2e-2 * w32.abs().max()  # bf16 has 8 mantissa bits
    assert mod.weight.data_ptr() == ptr and torch.equal(mod.weight.data, original)  # the base tensor itself is back


def test_materialised_restores_weights_after_an_error(tiny, svd_both):
    pol = _perturbed(svd_both, "direct", "both")
    before = {n: tiny.model.get_submodule(n).weight.data_ptr() for n in pol.names}
    with pytest.raises(RuntimeError, match="boom"), materialised(tiny.model, svd_both, pol):
        raise RuntimeError("boom")
    assert all(tiny.model.get_submodule(n).weight.data_ptr() == p for n, p in before.items())
    with pytest.raises(ValueError, match="float16"), materialised(tiny.model, svd_both, pol, dtype="float16"):
        pass


def test_direct_init_is_the_base_model(tiny, svd_both):
    pol = SVFPolicy(ranks_of(svd_both), SVFConfig(targets="both"))
    assert all(torch.equal(pol.z(n), torch.ones_like(pol.z(n))) for n in pol.names)
    with attached(tiny.model, svd_both, pol):
        assert (_logits(tiny.model, IDS) - _logits_base(tiny)).abs().max() < 1e-4


def _logits_base(tiny):
    return _logits(tiny.model, IDS)


def test_sigmoid_keeps_nuclear_norm(svd_both):
    pol = SVFPolicy(ranks_of(svd_both), SVFConfig(targets="both", param="sigmoid"), seed=3)
    name = pol.names[0]
    s = svd_both[name][1]
    z = pol.z(name)
    assert torch.all((z > 0.5) & (z < 0.56))  # sigmoid(0.1 ± small noise)
    assert torch.isclose(pol.scaled_s(name, s).sum(), s.sum(), rtol=1e-5)


def test_gradient_reaches_z(tiny, svd_both):
    pol = SVFPolicy(ranks_of(svd_both), SVFConfig(targets="both"))
    with attached(tiny.model, svd_both, pol, "factored"):
        tiny.model(IDS).logits.float().logsumexp(-1).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pol.params.values())
    assert all(p.grad is None for p in tiny.model.parameters())  # the base model stays frozen by construction


def _header(tiny, pol):
    return ExpertHeader(base_weights_hash=tiny.weights_hash, model=tiny.alias, task="arc_easy",
                        svf={"targets": "both", "param": "direct", "mode": "factored", "init_mean": 0.1,
                             "init_std": 0.01}, ranks={n: int(pol.z(n).shape[0]) for n in pol.names})


def test_expert_roundtrip_and_errors(tiny, svd_both, tmp_path):
    pol = _perturbed(svd_both, "direct")
    path = save_expert(tmp_path / "e.safetensors", pol, _header(tiny, pol))
    loaded, header = load_expert(path, tiny.weights_hash)
    assert header.task == "arc_easy"
    assert all(torch.equal(loaded.z(n), pol.z(n)) for n in pol.names)
    with pytest.raises(ArtifactError, match="trained on base model 'tiny-random'.*not on this model"):
        load_expert(path, "f" * 64)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_expert(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ArtifactError, match="not a t2 SVF expert"):
        load_expert(tmp_path / "junk.safetensors")


def test_nan_is_refused(tiny, svd_both, tmp_path):
    pol = _perturbed(svd_both, "direct")
    with torch.no_grad():
        pol.params[next(iter(pol.params))][0] = float("nan")
    with pytest.raises(ArtifactError, match="NaN"):
        save_expert(tmp_path / "e.safetensors", pol, _header(tiny, pol))
    assert not (tmp_path / "e.safetensors").exists()
    # a NaN smuggled into a file is refused on load too
    good = _perturbed(svd_both, "direct")
    path = save_expert(tmp_path / "g.safetensors", good, _header(tiny, good))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    state[next(iter(state))][3] = float("nan")
    save_file(state, str(path), metadata=meta)
    with pytest.raises(ArtifactError, match="NaN"):
        load_expert(path)


def test_expert_on_wrong_shapes(tiny, svd_both):
    from t2core.models import load_model
    from t2core.models.tiny import tiny_config

    other = load_model("tiny-random")
    cfg = tiny_config(len(other.tokenizer))
    cfg.intermediate_size = 96
    from transformers import LlamaForCausalLM

    other.model = LlamaForCausalLM(cfg)
    pol = SVFPolicy(ranks_of(svd_both), SVFConfig(targets="both"))
    with pytest.raises(ArtifactError, match="wrong model for this expert"):
        with attached(other.model, svd_both, pol):
            pass


def test_config_errors():
    with pytest.raises(ConfigError, match="'tanh' is not one of"):
        SVFConfig(param="tanh")
    with pytest.raises(ConfigError, match="mode 'lazy'"):
        SVFConfig(mode="lazy")


# --------------------------------------------------------------------------- expert identity and integrity


def _two_experts(tiny, tmp_path):
    from t2core.svd import ensure_svd, load_svd
    from t2core.svf import ExpertHeader, SVFPolicy, ranks_of, save_expert

    svd = load_svd(ensure_svd(tiny, "mlp"))
    paths = []
    for i in range(2):
        policy = SVFPolicy(ranks_of(svd))
        policy.load_raw_state({k: v + 0.1 * (i + 1) for k, v in policy.raw_state().items()})
        header = ExpertHeader(base_weights_hash=tiny.weights_hash, model="tiny-random", task="gsm8k",
                              svf=asdict(policy.cfg), ranks=ranks_of(svd))
        paths.append(save_expert(tmp_path / f"run{i}" / "same-name" / "expert.safetensors", policy, header))
    return paths


def test_experts_in_folders_of_the_same_name_are_different_variants(tiny, tmp_path, data_dir):
    import shutil

    from t2core.evaluate import EvalConfig, plan_eval
    from t2core.sampling import GenerationConfig
    from t2core.variants import resolve_variant

    a, b = _two_experts(tiny, tmp_path)
    va, vb = resolve_variant(tiny, expert=str(a)), resolve_variant(tiny, expert=str(b))
    assert va.name != vb.name and va.name.startswith("svf:")
    cfg = EvalConfig("gsm8k", limit=2, generation=GenerationConfig(max_new_tokens=4))
    assert plan_eval(tiny.weights_hash, cfg, data_dir, va.name).run_id != plan_eval(tiny.weights_hash, cfg, data_dir, vb.name).run_id
    copy = tmp_path / "elsewhere" / "x.safetensors"
    copy.parent.mkdir()
    shutil.copy(a, copy)
    assert resolve_variant(tiny, expert=str(copy)).name == va.name  # identity is content, not place


def test_a_flipped_byte_in_an_expert_is_refused_wherever_it_lives(tiny, tmp_path, t2_home, data_dir):
    from t2core.errors import ArtifactError
    from t2core.training.config import RLConfig
    from t2core.training.experts import train_expert
    from t2core.variants import resolve_variant

    (a, _) = _two_experts(tiny, tmp_path)
    raw = bytearray(a.read_bytes())
    raw[-3] ^= 0x40  # inside the last vector's data: the file still parses, z is silently different
    a.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="corrupted: its vectors do not match the checksum"):
        resolve_variant(tiny, expert=str(a))
    out = train_expert(tiny, RLConfig(task="arc_easy", steps=1, batch_size=2, valid_every=5, valid_limit=2,
                                      max_new_tokens=2), data_dir)
    stored = bytearray(out.path.read_bytes())
    stored[-3] ^= 0x40
    out.path.write_bytes(bytes(stored))
    for ref in (out.expert_id, str(out.path)):
        with pytest.raises(ArtifactError, match="corrupted"):
            resolve_variant(tiny, expert=ref)


# --------------------------------------------------------------------------- per-row experts in one batch


def _bank(tiny, k=3):
    from tests.conftest import random_experts

    return random_experts(tiny, k, scale=0.3, seed=10)


@pytest.mark.parametrize("mode", ["factored", "grouped"])
def test_a_mixed_batch_matches_each_row_run_alone_with_its_own_expert(tiny, mode):
    from t2core.sampling import SVFWeights
    from t2core.svf import materialised, materialised_scales
    from t2core.svf.bank import one_hot, per_row

    svd, policies, bank = _bank(tiny)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, tiny.model.config.vocab_size, (6, 9), generator=g)  # (B, T), no padding
    rows = [0, 2, 1, 1, 0, 2]
    with torch.no_grad():
        with per_row(tiny.model, svd, bank, one_hot(rows, bank.k), mode=mode):
            mixed = tiny.model(ids).logits  # (B, T, V)
        for b, k in enumerate(rows):
            with materialised(tiny.model, svd, policies[k]):
                alone = tiny.model(ids[b : b + 1]).logits
            assert (mixed[b] - alone[0]).abs().max() < 1e-4, (b, k)
        # a mixture row: Σ α_k · scale_k, as one materialised expert
        alpha = torch.tensor([[0.5, 0.25, 0.25]])
        with per_row(tiny.model, svd, bank, alpha, mode=mode):
            mix = tiny.model(ids[:1]).logits
        avg = SVFWeights(tiny.weights_hash, {n: (alpha @ sc)[0] for n, sc in bank.scales.items()})
        with materialised_scales(tiny.model, svd, avg):
            ref = tiny.model(ids[:1]).logits
        assert (mix - ref).abs().max() < 1e-4
        base = tiny.model(ids).logits
    assert (mixed - base).abs().max() > 1e-3  # the experts changed the model
    from t2core.sampling.hf import bf16_autocast

    with torch.no_grad(), per_row(tiny.model, svd, bank, one_hot(rows, bank.k), dtype="bfloat16", mode=mode), \
            bf16_autocast(tiny.model, torch.device("cpu")):
        low = tiny.model(ids).logits.float()  # bf16 U, V under autocast: the generation setting
    assert (low - mixed).abs().max() < 0.05 * mixed.abs().max()
    # greedy generation: the mixed batch writes what each row writes on its own
    with per_row(tiny.model, svd, bank, one_hot(rows, bank.k), mode=mode):
        together = tiny.model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    for b, k in enumerate(rows):
        with per_row(tiny.model, svd, bank, one_hot([k], bank.k), mode=mode):
            alone = tiny.model.generate(ids[b : b + 1], max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert torch.equal(together[b], alone[0]), b
    assert not any(type(m).__name__.startswith("_Row") for m in tiny.model.modules())  # restored


def test_bank_refuses_mismatched_experts_and_weights(tiny):
    from t2core.sampling import SVFWeights
    from t2core.svf.bank import ExpertBank, one_hot, per_row

    svd, _, bank = _bank(tiny, k=2)
    other = SVFWeights("f" * 64, {n: sc[0] for n, sc in bank.scales.items()})
    mine = SVFWeights(bank.base_weights_hash, {n: sc[0] for n, sc in bank.scales.items()})
    with pytest.raises(ArtifactError, match="a bank holds one model's experts"):
        ExpertBank.of([mine, other])
    with pytest.raises(ConfigError, match=r"must lie in \[0, 2\)"):
        one_hot([0, 2], 2)
    with pytest.raises(ConfigError, match=r"finite \(batch, 2\)"):
        with per_row(tiny.model, svd, bank, torch.ones(3, 3)):
            pass
    ids = torch.ones(2, 4, dtype=torch.long)
    with pytest.raises(ConfigError, match="a batch of 2 rows met per-row weights for 3 rows"):
        with per_row(tiny.model, svd, bank, one_hot([0, 1, 1], 2)), torch.no_grad():
            tiny.model(ids)


def test_z_one_leaves_the_weights_untouched(tiny, svd_both):
    """A scale of exactly 1 skips the rebuild: W stays W bitwise (U diag(s) Vᵀ equals it only to rounding)."""
    pol = SVFPolicy(ranks_of(svd_both), SVFConfig(targets="both"))  # z = 1
    names = pol.names
    before = {n: tiny.model.get_submodule(n).weight.data_ptr() for n in names}
    base = _logits(tiny.model, IDS)
    with materialised(tiny.model, svd_both, pol):
        assert {n: tiny.model.get_submodule(n).weight.data_ptr() for n in names} == before
        assert torch.equal(_logits(tiny.model, IDS), base)
    with torch.no_grad():
        pol.params[next(iter(pol.params))].mul_(1.1)  # one matrix's z moves: that one is rebuilt, the rest are not
    with materialised(tiny.model, svd_both, pol):
        moved = [n for n in names if tiny.model.get_submodule(n).weight.data_ptr() != before[n]]
        assert len(moved) == 1
        assert not torch.equal(_logits(tiny.model, IDS), base)
