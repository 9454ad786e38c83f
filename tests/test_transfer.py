"""Cross-model transfer (paper §4.4): the mapping on synthetic shapes, the controls, and `t2 transfer`
end to end on tiny-random twins (same shapes, other weights) and a model of other depth and widths."""

from dataclasses import asdict

import pytest
import torch

from t2core.errors import ConfigError
from t2core.transfer import plan_mapping, resample, source_layer
from t2core.transfer.controls import CONTROLS
from tests.conftest import catalog_rows, t2_inproc


def _ranks(layers: int, r: int, roles=("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")) -> dict[str, int]:
    return {f"model.layers.{b}.{role}": r for b in range(layers) for role in roles}


@pytest.mark.parametrize(("rs", "rd"), [(576, 896), (896, 576), (7, 3), (3, 7), (64, 96)])
def test_a_vector_of_ones_stays_ones_at_any_length(rs, rd):
    assert torch.equal(resample(torch.ones(rs), rd), torch.ones(rd))


def test_a_step_stays_a_step_at_the_same_relative_rank():
    step = torch.zeros(8)
    step[:2] = 1.0  # a step at relative rank 0.25
    assert resample(step, 16).tolist() == [1.0] * 4 + [0.0] * 12
    big = torch.cat([torch.full((144,), 1.5), torch.full((432,), 0.8)])  # SmolLM2's r = 576, step at 0.25
    out = resample(big, 896)  # Qwen2.5-0.5B's r = 896: the step at 224 = 0.25 · 896
    assert torch.allclose(out[:224], torch.tensor(1.5)) and torch.allclose(out[224:], torch.tensor(0.8))
    odd = resample(step, 6)  # the edge falls inside destination cell 1 (its span [1/6, 2/6) holds 0.25)
    assert odd.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0, 0.0, 0.0])


def test_resampling_keeps_the_mean_and_the_range():
    v = 1 + 0.3 * torch.randn(576, generator=torch.Generator().manual_seed(0))
    for r in (100, 896, 2000):
        out = resample(v, r)
        assert out.mean().item() == pytest.approx(v.mean().item(), abs=1e-6)
        assert v.min() - 1e-6 <= out.min() and out.max() <= v.max() + 1e-6


def test_blocks_are_matched_by_relative_depth():
    assert [source_layer(b, 30, 30) for b in range(30)] == list(range(30))  # equal depth: the identity
    deep = [source_layer(b, 30, 24) for b in range(24)]  # SmolLM2 (30 blocks) -> Qwen2.5-0.5B (24)
    assert deep[0] == 0 and deep[-1] == 29 and deep == sorted(deep)
    assert [source_layer(b, 2, 3) for b in range(3)] == [0, 1, 1]
    m = plan_mapping(_ranks(2, 64), _ranks(3, 96))
    assert m.kind == "relative-depth" and m.layers == ((0, 0), (1, 1), (2, 1))
    assert dict(m.sources)["model.layers.2.mlp.down_proj"] == "model.layers.1.mlp.down_proj"  # role to role


def test_same_shapes_map_matrix_by_matrix_unchanged():
    ranks = _ranks(2, 8)
    m = plan_mapping(ranks, dict(reversed(list(ranks.items()))))  # same names and shapes, other order
    assert m.kind == "same-shapes" and all(d == s for d, s in m.sources)
    v = {n: torch.randn(8) for n in ranks}
    assert all(torch.equal(m.apply(v, ranks)[n], v[n]) for n in ranks)


def test_what_cannot_be_mapped_is_refused():
    with pytest.raises(ConfigError, match=r"the destination has no mlp.down_proj, mlp.gate_proj, mlp.up_proj; the expert "
                                          r"has no vector for self_attn.q_proj.*same target spec"):
        plan_mapping(_ranks(2, 8), _ranks(2, 8, roles=("self_attn.q_proj",)))  # an MLP expert onto attention targets
    with pytest.raises(ConfigError, match=r"the destination has no mlp.up_proj; "):
        plan_mapping(_ranks(2, 8), _ranks(2, 8, roles=("mlp.gate_proj", "mlp.down_proj")))  # a role it lacks


def test_the_controls_keep_what_they_claim_to_keep():
    v = 1 + 0.2 * torch.randn(64, generator=torch.Generator().manual_seed(1))
    shuf = CONTROLS.get("shuffled")(v, "m.0.mlp.up_proj", 0, 1.0)
    assert torch.equal(shuf.sort().values, v.sort().values) and not torch.equal(shuf, v)  # same values, new order
    assert torch.equal(shuf, CONTROLS.get("shuffled")(v, "m.0.mlp.up_proj", 0, 1.0))  # seeded
    assert not torch.equal(shuf, CONTROLS.get("shuffled")(v, "m.1.mlp.up_proj", 0, 1.0))  # per matrix
    rnd = CONTROLS.get("random")(v, "m.0.mlp.up_proj", 0, 1.0)
    assert (rnd - 1).norm().item() == pytest.approx((v - 1).norm().item(), rel=1e-5)  # the same size of change
    cos = torch.nn.functional.cosine_similarity(rnd - 1, v - 1, dim=0).abs().item()
    assert cos < 0.5  # in another direction
    sig = CONTROLS.get("random")(v, "m.0.mlp.up_proj", 0, None)  # sigmoid: "no change" is any constant
    assert (sig - v.mean()).norm().item() == pytest.approx((v - v.mean()).norm().item(), rel=1e-5)
    with pytest.raises(Exception, match="unknown transfer control 'reversed'"):
        CONTROLS.get("reversed")


def _random_expert_file(tmp_path, alias: str, scale: float = 0.1):
    """An SVF expert of `alias` whose z is 1 + scale·N(0, 1) (a trained tiny expert is often z = 1)."""
    from t2core.models import load_model
    from t2core.svf import ExpertHeader, SVFConfig, SVFPolicy, save_expert
    from t2ops.model import ident_of

    loaded = load_model(alias)
    ranks = ident_of(loaded).target_ranks("mlp")
    p = SVFPolicy(ranks)
    g = torch.Generator().manual_seed(3)
    p.load_raw_state({n: v + scale * torch.randn(v.shape, generator=g) for n, v in p.raw_state().items()})
    header = ExpertHeader(base_weights_hash=loaded.weights_hash, model=alias, task="arc_easy_cloze",
                          svf=asdict(SVFConfig()), ranks=ranks)
    return save_expert(tmp_path / "src.safetensors", p, header), p


def test_transfer_end_to_end_across_shapes_and_onto_a_twin(tmp_path, t2_home, data_dir):
    from t2core.experts import ExpertRef

    missing = t2_inproc("transfer", "--src", "llama3-8b", "--dst", "mistral-7b")  # the users' own words
    assert missing.returncode == 2
    assert "no experts for llama3-8b in the catalog: train them with `t2 train --model llama3-8b" in missing.stderr
    assert "Traceback" not in missing.stderr

    path, src = _random_expert_file(tmp_path, "tiny-random")
    out = t2_inproc("transfer", "--src", "tiny-random", "--dst", "tiny-random-deep", "--experts", str(path),
                    "--control", "ordered,shuffled,random")
    assert out.returncode == 0, out.stderr
    rows = catalog_rows(t2_home, "SELECT config_json, variant FROM runs WHERE kind = 'transfer' AND status = 'completed'"
                                 " ORDER BY run_id")
    assert len(rows) == 3 and len({v for _, v in rows}) == 3  # three different destination experts
    import json

    by_control = {json.loads(c)["control"]: v.removeprefix("svf:") for c, v in rows}
    ordered = ExpertRef.resolve("svf:" + by_control["ordered"])
    t = ordered.header.config["transfer"]
    assert (ordered.header.model, t["source_model"], t["mapping"]["kind"]) == (
        "tiny-random-deep", "tiny-random", "relative-depth")
    z = ordered.load().raw_state()
    assert z["model.layers.2.mlp.up_proj"].shape == (96,)  # tiny-random-deep: 3 blocks, r = 96
    want = resample(src.raw_state()["model.layers.1.mlp.up_proj"], 96)  # block 2 of 3 <- block 1 of 2
    assert torch.allclose(z["model.layers.2.mlp.up_proj"], want)

    ev = t2_inproc("eval", "--model", "tiny-random-deep", "--task", "arc_easy_cloze", "--limit", "2", "--expert",
                   ordered.id)  # an ordinary expert of the destination
    assert ev.returncode == 0, ev.stderr
    again = t2_inproc("transfer", "--src", "tiny-random", "--dst", "tiny-random-deep", "--experts", str(path),
                      "--control", "ordered,shuffled,random")
    assert again.returncode == 0 and again.stdout.count("reused") == 3, again.stdout
    assert catalog_rows(t2_home, "SELECT count(*) FROM runs WHERE kind = 'transfer'") == [(3,)]

    twin = t2_inproc("transfer", "--src", "tiny-random", "--dst", "tiny-random-twin", "--experts", str(path))
    assert twin.returncode == 0 and "same-shapes" in twin.stdout, twin.stdout + twin.stderr
    tw = catalog_rows(t2_home, "SELECT variant FROM runs r WHERE kind = 'transfer' AND model = 'tiny-random-twin'")
    z_twin = ExpertRef.resolve(tw[0][0]).load().raw_state()
    assert all(torch.equal(z_twin[n], v) for n, v in src.raw_state().items())  # the paper's transfer: unchanged

    same = t2_inproc("transfer", "--src", "tiny-random", "--dst", "tiny-random", "--experts", str(path))
    assert same.returncode == 2 and "already an expert of tiny-random" in same.stderr


def test_a_control_that_gives_the_same_expert_says_so(tmp_path, t2_home, data_dir):
    """Issue 36: an expert at z = 1 everywhere stays z = 1 when shuffled or resampled, so its controls are the
    ordered transfer itself; the listing says so instead of counting three experts moved."""
    path, _ = _random_expert_file(tmp_path, "tiny-random", scale=0.0)
    out = t2_inproc("transfer", "--src", "tiny-random", "--dst", "tiny-random-twin", "--experts", str(path),
                    "--control", "ordered,shuffled,random")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "3 transferred experts (1 distinct)" in text and text.count("same as ordered") == 2, text
