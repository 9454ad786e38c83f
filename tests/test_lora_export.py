"""LoRA export (issue 37, docs/experts.md): an SVF expert's change ΔW = U diag(s ⊙ (m − 1)) Vᵀ, its best
rank-r truncation (Eckart–Young: keep the r largest |sᵢ(mᵢ − 1)|) by hand, and the PEFT adapter that
`peft.PeftModel.from_pretrained` loads, whose forward is the expert's at full rank."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from t2core.errors import ArtifactError, ConfigError
from t2core.export.lowrank import factors, kept, smallest_rank, spectra, truncation
from t2core.export.peft_lora import ADAPTER_CONFIG, check_rank, rank_for, to_peft, write_adapter


def _orthonormal(n: int, k: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q.float()


def _svd_of(out: int, inn: int, s: list[float], seed: int = 0):
    return _orthonormal(out, len(s), seed), torch.tensor(s), _orthonormal(inn, len(s), seed + 1)


def test_the_best_rank_r_keeps_the_largest_changes_by_hand():
    u, s, v = _svd_of(5, 4, [4.0, 3.0, 2.0, 1.0])
    m = torch.tensor([1.5, 1.0, 0.5, 1.5])  # d = s (m - 1) = [2, 0, -1, 0.5]: ‖ΔW‖² = 5.25
    ds = spectra({"w": m}, {"w": (u, s, v)})
    assert ds["w"].tolist() == [2.0, 0.0, -1.0, 0.5]
    assert kept(ds["w"], 2).tolist() == [0, 2]  # the two largest |d|, not the two largest s
    for r, left in ((1, 1.25), (2, 0.25), (3, 0.0), (4, 0.0)):
        t = truncation(ds, r)
        assert t.errors["w"] == pytest.approx(math.sqrt(left / 5.25)) and t.error == t.errors["w"]
        assert t.norms["w"] == pytest.approx(math.sqrt(5.25))
    a, b = factors(u, ds["w"], v, 2)
    assert a.shape == (2, 4) and b.shape == (5, 2)
    by_hand = 2.0 * torch.outer(u[:, 0], v[:, 0]) - 1.0 * torch.outer(u[:, 2], v[:, 2])
    assert torch.allclose(b @ a, by_hand, atol=1e-6)
    dw = u @ torch.diag(ds["w"].float()) @ v.T
    assert (torch.linalg.norm(dw - b @ a) / torch.linalg.norm(dw)).item() == pytest.approx(math.sqrt(0.25 / 5.25),
                                                                                         rel=1e-5)
    sv = torch.linalg.svdvals(dw.double())  # Eckart–Young from ΔW's own SVD: the error of its best rank 2
    assert math.sqrt(float((sv[2:] ** 2).sum())) == pytest.approx(math.sqrt(0.25), rel=1e-5)
    assert smallest_rank(ds, 0.5) == 1 and smallest_rank(ds, 0.3) == 2 and smallest_rank(ds, 0.1) == 3
    assert smallest_rank(ds, 0.0) == 3  # exact at rank 3: d has one zero
    a, b = factors(u, ds["w"], v, 6)  # past the matrix's rank: zero rows and columns
    assert a.shape == (6, 4) and b.shape == (5, 6) and not a[4:].any() and not b[:, 4:].any()
    assert torch.allclose(b @ a, dw, atol=1e-6)


def test_auto_rank_judges_the_change_over_all_matrices_by_hand():
    big, small = _svd_of(5, 4, [4.0, 3.0, 2.0, 1.0]), _svd_of(6, 3, [1.0, 1.0, 1.0], seed=7)
    ds = spectra({"big": torch.tensor([1.5, 1.0, 0.5, 1.5]), "small": torch.tensor([1.1, 0.9, 1.1])},
                 {"big": big, "small": small})  # d_small = [0.1, -0.1, 0.1]: ‖ΔW‖² = 0.03, spread over its spectrum
    t = truncation(ds, 1)
    assert t.error == pytest.approx(math.sqrt((1.25 + 0.02) / 5.28))
    assert t.errors["small"] == pytest.approx(math.sqrt(2 / 3))  # per matrix: recorded, not the criterion
    assert smallest_rank(ds, 0.25) == 2  # rank 2 loses 0.25 + 0.01 of 5.28: 0.222; the small matrix alone 0.577
    assert truncation(ds, 3).errors == {"big": 0.0, "small": 0.0}
    zero = spectra({"w": torch.ones(4)}, {"w": big})
    assert smallest_rank(zero, 0.05) == 1 and truncation(zero, 1).error == 0.0  # ΔW = 0: the base model


def test_rank_and_tolerance_refusals():
    for bad in ("0", "-3", "1.5", "abc", ""):
        with pytest.raises(ConfigError, match="whole number >= 1"):
            check_rank(bad)
    assert check_rank("auto") == "auto" and check_rank("16") == 16
    ds = spectra({"w": torch.tensor([2.0])}, {"w": _svd_of(2, 2, [1.0])})
    for tol in (1.0, -0.1):
        with pytest.raises(ConfigError, match=r"in \[0, 1\)"):
            smallest_rank(ds, tol)
    with pytest.raises(ArtifactError, match="length 1, the matrix has 2"):
        spectra({"w": torch.ones(1)}, {"w": _svd_of(3, 2, [1.0, 1.0])})


# --- the adapter PEFT loads, on the tiny model -------------------------------------------------------------


def _stored_expert(tiny, seed: int, scale: float = 0.2, param: str = "direct", task: str = "arc_easy_cloze"):
    """An SVF expert of the tiny model (z = 1 + scale·N(0, 1), or p of that for sigmoid) in this test's store."""
    from dataclasses import asdict

    from t2core.artifacts import ArtifactStore
    from t2core.experts import store_expert
    from t2core.svd import ensure_svd, load_svd
    from t2core.svf import ExpertHeader, SVFConfig, SVFPolicy, ranks_of

    ranks = ranks_of(load_svd(ensure_svd(tiny, "mlp")))
    p = SVFPolicy(ranks, SVFConfig(param=param))
    g = torch.Generator().manual_seed(seed)
    p.load_raw_state({n: 1 + scale * torch.randn(v.shape, generator=g) for n, v in p.raw_state().items()})
    header = ExpertHeader(base_weights_hash=tiny.weights_hash, model=tiny.alias, task=task,
                          svf=asdict(SVFConfig(param=param)), ranks=ranks, origin="svf-pg")
    return store_expert(ArtifactStore(), f"test-{seed}-{param}", p, header), p


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def _delta(svd, name: str, m: torch.Tensor) -> torch.Tensor:
    u, s, v = svd[name]
    return u @ torch.diag(s * (m - 1)) @ v.T


def test_the_peft_adapter_is_the_expert_at_full_rank_and_its_truncation_below(tiny, tmp_path, t2_home):
    from t2core.adapters import with_adapter
    from t2core.svd import ensure_svd, load_svd
    from t2core.variants import resolve_variant

    ref, policy = _stored_expert(tiny, seed=1)
    svd = load_svd(ensure_svd(tiny, "mlp"))
    ids = torch.randint(0, tiny.model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    base = _logits(tiny.model, ids)
    with resolve_variant(tiny, expert=ref.id).weights():  # the exact expert, as evaluations apply it
        exact = _logits(tiny.model, ids)
    assert (exact - base).abs().max() > 1e-2  # the expert changes the outputs: the comparison can fail

    full = to_peft(ref, tmp_path / "full", rank=1000)  # capped at the largest matrix rank
    assert full.rank == 64 and full.asked == 1000 and full.truncation.error == pytest.approx(0.0, abs=1e-12)
    with with_adapter(tiny, path=full.path) as pm:
        assert (_logits(pm.model, ids) - exact).abs().max() < 1e-4
    assert torch.equal(_logits(tiny.model, ids), base)  # the adapter is gone afterwards

    low = to_peft(ref, tmp_path / "r8", rank=8)
    name = "model.layers.1.mlp.down_proj"
    with with_adapter(tiny, path=low.path) as pm:
        layer = pm.model.get_submodule(f"base_model.model.{name}")
        got = layer.lora_B["default"].weight @ layer.lora_A["default"].weight * layer.scaling["default"]
        assert layer.scaling["default"] == 1.0
        low_out = _logits(pm.model, ids)
    d = svd[name][1] * (policy.z(name).detach() - 1)
    idx = torch.argsort(d.abs(), descending=True)[:8]
    u, _, v = svd[name]
    by_hand = u[:, idx] @ torch.diag(d[idx]) @ v[:, idx].T  # U_r diag(s_r (z_r − 1)) V_rᵀ
    assert torch.allclose(got, by_hand, atol=1e-6)
    dw = _delta(svd, name, policy.z(name).detach())
    err = (torch.linalg.norm(dw - got) / torch.linalg.norm(dw)).item()
    assert low.manifest["lora"]["errors"][name] == pytest.approx(err, rel=1e-4) and 0.1 < err < 1
    assert (low_out - exact).abs().max() > 1e-5  # rank 8 of 64 is not the expert

    cfg = json.loads((low.path / ADAPTER_CONFIG).read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["peft_type"], cfg["use_rslora"]) == (8, 8, "LORA", False)
    assert cfg["target_modules"] == sorted(policy.names)
    auto = to_peft(ref, tmp_path / "auto", rank="auto", tol=0.3)
    assert auto.rank == rank_for(ref, 0.3) and auto.truncation.error <= 0.3 < truncation(
        spectra({n: policy.z(n).detach() for n in policy.names}, svd), auto.rank - 1).error
    assert auto.manifest["lora"]["tol"] == 0.3 and auto.manifest["expert_id"] == ref.id


def test_a_sigmoid_expert_exports_its_rescaled_multipliers(tiny, tmp_path, t2_home):
    from safetensors.torch import load_file

    from t2core.export.peft_lora import ADAPTER_WEIGHTS
    from t2core.svd import ensure_svd, load_svd

    ref, policy = _stored_expert(tiny, seed=2, scale=1.0, param="sigmoid")
    svd = load_svd(ensure_svd(tiny, "mlp"))
    out = to_peft(ref, tmp_path / "sig", rank=64)
    w = load_file(str(out.path / ADAPTER_WEIGHTS))
    name = "model.layers.0.mlp.up_proj"
    s = svd[name][1]
    z = torch.sigmoid(policy.params[name.replace(".", "__")].detach())
    m = z * s.sum() / (s * z).sum()  # the released code's rescale: W' keeps W's nuclear norm
    got = w[f"base_model.model.{name}.lora_B.weight"] @ w[f"base_model.model.{name}.lora_A.weight"]
    assert torch.allclose(got, _delta(svd, name, m), atol=1e-5)
    assert not torch.allclose(got, _delta(svd, name, z), atol=1e-3)  # σ(p) alone is not what the expert applies


def test_a_mixture_exports_as_the_weighted_sum_of_its_experts_changes(tiny, tmp_path, t2_home):
    from safetensors.torch import load_file

    from t2core.export.peft_lora import ADAPTER_WEIGHTS
    from t2core.svd import ensure_svd, load_svd
    from t2core.svf import svf_weights
    from t2core.svf.bank import ExpertBank
    from t2core.svf.mixture import mix_scales

    (_, p1), (_, p2) = _stored_expert(tiny, seed=3), _stored_expert(tiny, seed=4)
    svd = load_svd(ensure_svd(tiny, "mlp"))
    bank = ExpertBank.of([svf_weights(p, svd, tiny.weights_hash) for p in (p1, p2)])
    out = write_adapter(mix_scales(bank, torch.tensor([0.3, 0.7])), svd, tmp_path / "mix", rank=64)
    w = load_file(str(out.path / ADAPTER_WEIGHTS))
    for name in ("model.layers.0.mlp.gate_proj", "model.layers.1.mlp.down_proj"):
        got = w[f"base_model.model.{name}.lora_B.weight"] @ w[f"base_model.model.{name}.lora_A.weight"]
        want = 0.3 * _delta(svd, name, p1.z(name).detach()) + 0.7 * _delta(svd, name, p2.z(name).detach())
        assert torch.allclose(got, want, atol=1e-5)  # SVF is linear in z: ΔW(Σ α z) = Σ α ΔW(z) when Σ α = 1


def test_export_needs_the_decomposition_and_an_empty_directory(tiny, tmp_path, t2_home):
    import shutil

    from t2core.artifacts import ArtifactStore

    ref, _ = _stored_expert(tiny, seed=5)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    with pytest.raises(ArtifactError, match="exists and is not an empty directory"):
        to_peft(ref, tmp_path / "full", rank=4)
    assert (tmp_path / "full" / "x").read_text() == "mine"
    shutil.rmtree(ArtifactStore().root / "svd")
    with pytest.raises(ArtifactError, match=r"no decomposition of tiny-random's mlp matrices .* `t2 svd --model "
                                            r"tiny-random --targets mlp`"):
        to_peft(ref, tmp_path / "none", rank=4)
    assert not (tmp_path / "none").exists()


_VLLM_READS = """
import sys, torch
from vllm.config.lora import LoRAConfig
from vllm.lora.lora_model import LoRAModel
from vllm.lora.peft_helper import PEFTHelper
path, name, rank, dump = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
helper = PEFTHelper.from_local_dir(path, max_position_embeddings=None)
helper.validate_legal(LoRAConfig(max_lora_rank=rank))  # raises on anything vLLM does not serve
model = LoRAModel.from_local_checkpoint(path, {"gate_proj", "up_proj", "down_proj"}, helper, lora_model_id=1,
                                        device="cpu", dtype=torch.float32)
w = model.get_lora(name)
a, b = w.lora_a, w.lora_b
delta = b @ a if a.shape[0] == rank else (a @ b).T  # PEFT's layout (r x in, out x r), or both transposed
torch.save({"n": len(model.loras), "rank": w.rank, "scaling": w.scaling, "delta": delta * w.scaling}, dump)
"""


@pytest.mark.vllm
def test_vllm_reads_the_adapter_with_its_own_loader(tiny, tmp_path, t2_home):
    """vLLM's own PEFT reader (the one its OpenAI server uses for --lora-modules) accepts the export and
    reads B A = ΔW_r for a module (vLLM's `max_lora_rank` must be at least the adapter's rank)."""
    import subprocess

    from t2core.serving.vllm_env import ServerSettings
    from t2core.svd import ensure_svd, load_svd

    ref, policy = _stored_expert(tiny, seed=6)
    out = to_peft(ref, tmp_path / "r8", rank=8)
    name = "model.layers.0.mlp.gate_proj"
    res = subprocess.run([str(ServerSettings().interpreter()), "-c", _VLLM_READS, str(out.path), name, "8",
                          str(tmp_path / "read.pt")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    got = torch.load(tmp_path / "read.pt")
    assert (got["n"], got["rank"], got["scaling"]) == (6, 8, 1.0)
    svd = load_svd(ensure_svd(tiny, "mlp"))
    u, s, v = svd[name]
    d = s * (policy.z(name).detach() - 1)
    idx = torch.argsort(d.abs(), descending=True)[:8]
    assert torch.allclose(got["delta"], u[:, idx] @ torch.diag(d[idx]) @ v[:, idx].T, atol=1e-6)


def test_lora_adapters_are_written_once_verified_once_a_process_and_named_by_content(tiny, t2_home):
    """`LoraAdapters` (the vllm-lora sampler's and `t2 api --backend vllm`'s adapters): an expert's adapter is
    written once, under a name its content decides (the same expert, the same name), reused unread after its first
    check, checked again by a new process, refused when damaged or for other base weights; the base weights and an
    expert at z = 1 have none."""
    from t2core.sampling import SVFWeights
    from t2core.sampling.vllm_lora import LoraAdapters
    from t2core.svd import ensure_svd, load_svd

    svd = load_svd(ensure_svd(tiny, "mlp"))
    g = torch.Generator().manual_seed(3)
    scale = {n: 1 + 0.3 * torch.randn(s.shape[0], generator=g) for n, (_, s, _) in svd.items()}
    expert = SVFWeights(tiny.weights_hash, scale)
    made = LoraAdapters(tiny, cap=8, tol=0.0)
    name, path = made.adapter(expert)
    weights = next(p for p in Path(path).iterdir() if p.suffix == ".safetensors")
    stamp = weights.stat().st_mtime_ns
    again = LoraAdapters(tiny, cap=8, tol=0.0)  # a new process's view: checked, not rewritten, the same name
    assert again.adapter(SVFWeights(tiny.weights_hash, {n: m.clone() for n, m in scale.items()})) == [name, path]
    assert weights.stat().st_mtime_ns == stamp
    assert LoraAdapters(tiny, cap=8, tol=0.5).adapter(expert)[0] != name  # another tolerance: another adapter
    assert made.adapter(None) is None
    assert made.adapter(SVFWeights(tiny.weights_hash, {n: torch.ones_like(m) for n, m in scale.items()})) is None
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    assert made.adapter(expert) == [name, path]  # this process checked it already: not read again
    with pytest.raises(ArtifactError, match=f"delete {path}"):
        LoraAdapters(tiny, cap=8, tol=0.0).adapter(expert)
    with pytest.raises(ArtifactError, match="sent to the LoRA adapters"):
        made.adapter(SVFWeights("0" * 64, scale))
