"""`t2 plan` (issue 35): shapes without weights, footprints counted by hand, the plan of each profile, the
knobs it names, and the run's up-front refusal. The counts against measured peaks are bench/memory.py's."""

from __future__ import annotations

import dataclasses

import pytest

from t2core.plan import footprint as fp
from t2core.plan.devices import Devices, memory_budget
from t2core.plan.shape import ModelShape, model_shape, shape_from_config
from tests.conftest import t2_inproc

GB = 1e9
# a Llama-like toy, small enough to count by hand: 2 layers, hidden 8, MLP 16, 2 heads of 4, 1 KV head, vocab 10
TOY = ModelShape("toy", layers=2, hidden=8, intermediate=16, heads=2, kv_heads=1, head_dim=4, vocab=10, tied=True)


def test_shape_counts_the_parameters_of_the_real_models(tiny):
    """n_params from the config equals the loaded model's, for the tiny model and the embedded SmolLM2 (whose
    shape is kept beside its alias, so the plan never loads it)."""
    assert model_shape("tiny-random").n_params == tiny.n_params
    smol = model_shape("smollm2-135m")
    assert (smol.layers, smol.hidden, smol.intermediate, smol.vocab, smol.tied) == (30, 576, 1536, 49152, True)
    assert smol.n_params == 134_515_008  # SmolLM2-135M-Instruct's published parameter count
    assert model_shape("llama3-8b").n_params == 8_030_261_248  # Meta-Llama-3-8B's


def test_shape_of_matrices_and_ranks_by_hand():
    assert TOY.matrices("mlp") == [(16, 8), (16, 8), (8, 16)] * 2
    assert TOY.matrices("attn") == [(8, 8), (4, 8), (4, 8), (8, 8)] * 2
    assert TOY.ranks("mlp") == 2 * (8 + 8 + 8)
    # blocks: attn 8*4*(2*2+2*1) = 192, mlp 3*8*16 = 384, two norms 16; embedding 80 (tied); final norm 8
    assert TOY.n_params == 2 * (192 + 384 + 16) + 80 + 8
    with pytest.raises(Exception, match="decoder's shape"):
        shape_from_config("broken", {"hidden_size": 8})


def test_footprint_parts_by_hand():
    # per token and layer: 16*8 (norms, fp32) + 4*(3*8 + 3*4 + 4*16) = 128 + 400 = 528 B; 2 layers
    assert fp.act_per_token(TOY, "float32") == 2 * 528
    assert fp.grad_activations(TOY, 3, 5, "float32") == 15 * 2 * 528
    # checkpointed: each layer's input (8 x 4 B) and ~3 layers' worth recomputed
    assert fp.grad_activations(TOY, 3, 5, "float32", checkpointing=True) == 15 * (2 * 32 + 3 * 528)
    # logits of 7 scored tokens in fp32: head 4 + log-softmax 4 + gradients 8 per vocabulary entry
    assert fp.logits(TOY, 7, "float32") == 7 * 10 * 16
    assert fp.logits(TOY, 7, "bfloat16", kl=True) == 7 * 10 * (6 + 4 + 8 + 16)
    # U (out, r), V (in, r) and s of each MLP matrix: (16+8)*8*4 + 8*4 each, 3 per layer, 2 layers
    assert fp.factors(TOY, "mlp") == 6 * ((16 + 8) * 8 * 4 + 8 * 4)
    assert fp.factors(TOY, "mlp", "bfloat16") == 6 * ((16 + 8) * 8 * 2 + 8 * 4)
    # K and V of 2 layers, 1 head of 4, 3 rows of 11 tokens: under bf16 autocast K float32, V bf16
    assert fp.kv_cache(TOY, 3, 11, "bfloat16") == 2 * 1 * 4 * 3 * 11 * (4 + 2)
    assert fp.kv_cache(TOY, 3, 11, "float32") == 2 * 1 * 4 * 3 * 11 * (4 + 4)
    # a GPU swaps W' in place: one matrix at a time on the device, every original on the host
    gpu = fp.swapped_weights(TOY, "mlp", gpu=True)
    assert gpu.total == 16 * 8 * 4 and gpu.host == 6 * 16 * 8 * 4
    # the host writes W' in place and reads W back from the weight file: one W' and one read buffer at a time
    assert fp.swapped_weights(TOY, "mlp").total == 2 * 16 * 8 * 4
    # a model without a weight file sets its originals aside: every targeted matrix twice
    assert fp.swapped_weights(dataclasses.replace(TOY, weight_file=False), "mlp").total == 6 * 16 * 8 * 4


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_kv_cache_count_is_the_cache_a_forward_keeps(tiny, dtype):
    """The plan's KV cache is the bytes of the cache a forward of the real model keeps, under the autocast t2
    runs with: with bf16 the rotated keys come out float32 (cos and sin in the residual's dtype), V bf16."""
    import torch

    from t2core.precision import autocast_for

    ids = torch.randint(3, 100, (3, 11))
    with torch.no_grad(), autocast_for(dtype, torch.device("cpu")):
        cache = tiny.model(input_ids=ids, use_cache=True).past_key_values
    held = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    assert held == fp.kv_cache(model_shape("tiny-random"), 3, 11, dtype)


def test_memory_budget_from_env_and_flag(monkeypatch):
    monkeypatch.setenv("T2_MEMORY_GB", "4")
    assert memory_budget() == (int(4 * GB), "T2_MEMORY_GB")
    assert memory_budget(2.5) == (int(2.5 * GB), "--memory-gb")
    monkeypatch.setenv("T2_MEMORY_GB", "lots")
    with pytest.raises(Exception, match="T2_MEMORY_GB='lots' is not a number"):
        memory_budget()
    monkeypatch.delenv("T2_MEMORY_GB")
    total, source = memory_budget()
    assert total > 0 and "less 15%" in source


def test_plan_walks_the_flow_stages_of_the_tiny_profile(data_dir):
    """The plan lists the stages the flow body submits, each with a footprint; the tiny profile fits."""
    from flows.plan import fit_plan
    from t2core.profiles import get_profile

    p = fit_plan(get_profile("tiny"), Devices(host_bytes=int(8 * GB)), data_dir=str(data_dir))
    labels = [s.label for s in p.stages]
    assert labels[0] == "svd" and "train:gsm8k" in labels and "train:dispatch" in labels
    assert {lab.split(":")[0] for lab in labels} >= {"svd", "train", "baseline", "eval", "few-shot", "adapt",
                                                      "transfer"}
    assert all(s.host_bytes > fp.RUNTIME_HOST for s in p.stages)
    assert p.misfit() is None


def test_paper_profile_fits_one_80gb_gpu_and_says_which_knob(data_dir):
    """The paper profile fits one 80 GB GPU as it is set (bf16 factors, gradient checkpointing); without its
    bf16 factors it does not, and the hint names that knob."""
    from flows.plan import fit_plan
    from t2core.profiles import get_profile

    gpu = Devices(gpus=1, gpu_bytes=int(80 * GB), host_bytes=int(100 * GB))
    paper = get_profile("paper")
    p = fit_plan(paper, gpu, data_dir=str(data_dir))
    assert p.misfit() is None, (p.misfit(), p.largest())
    assert p.device_peak < 80 * GB
    undone = fit_plan(dataclasses.replace(paper, factor_dtype="float32"), gpu, data_dir=str(data_dir))
    assert undone.misfit() is not None and "factor_dtype='bfloat16'" in undone.advice()


@pytest.mark.parametrize("task", ["arc_easy_cloze", "mbpp"])
def test_a_remote_sampler_scores_and_generates_in_its_own_process(data_dir, task):
    """With the vLLM sampler the candidates of a choice task are scored in its process too
    (VLLMSampler.choose), and an expert is applied there: the flow's process holds neither the cache nor W'."""
    from t2core.evaluate import EvalConfig
    from t2core.plan.work import PlanContext, evaluation, two_pass
    from t2core.sampling.base import GenerationConfig

    ctx = PlanContext(TOY, str(data_dir))
    cfg = EvalConfig(task, "test", 8, GenerationConfig(max_new_tokens=16, batch_size=4))
    here = evaluation(cfg, ctx, expert=True)
    assert here.footprint.total > 0 and here.factors == "mlp" and not here.sampler_process
    there = evaluation(cfg, ctx, expert=True, remote=True)
    assert there.footprint.total == 0 and there.factors is None and there.sampler_process
    for pass1 in ("choice", "generate"):
        two = two_pass(cfg, ctx, pass1, 8, remote=True)
        assert two.footprint.total == 0 and two.sampler_process
        assert two_pass(cfg, ctx, pass1, 8).footprint.total > 0


def test_factor_dtype_bf16_needs_a_bf16_profile():
    from t2core.profiles import get_profile

    with pytest.raises(Exception, match="factor_dtype='bfloat16' needs dtype='bfloat16'"):
        dataclasses.replace(get_profile("smol"), factor_dtype="bfloat16")


def test_plan_cli_prints_a_table_and_refuses_bad_input(data_dir):
    out = t2_inproc("plan", "--profile", "tiny", "--gpus", "0", "--memory-gb", "8", "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    assert "train:gsm8k" in out.stdout and "fits" in out.stdout
    small = t2_inproc("plan", "--profile", "tiny", "--gpus", "0", "--memory-gb", "0.1", "--data-dir", str(data_dir))
    assert small.returncode == 0 and "does not fit: needs" in small.stdout
    bad = t2_inproc("plan", "--profile", "tiny", "--gpus", "-1")
    assert bad.returncode == 2 and "--gpus -1 must be >= 0" in bad.stderr
    unknown = t2_inproc("plan", "--profile", "tiny", "--flow", "nope")
    assert unknown.returncode == 2 and "flow 'nope' has no plan" in unknown.stderr


def test_checkpointed_reinforce_step_gives_the_same_gradient(tiny, data_dir):
    """grad_checkpointing recomputes activations: the gradient of z is the same up to rounding."""
    import torch

    from t2core.models.targets import find_targets
    from t2core.svd import svd_matrix
    from t2core.svf.apply import attached
    from t2core.svf.placement import place_policy
    from t2core.svf.policy import SVFConfig, SVFPolicy
    from t2core.training.recompute import recomputed

    model = tiny.model
    svd = {n: svd_matrix(m.weight) for n, m in find_targets(model, tiny.family, "mlp").items()}
    ids = torch.randint(3, 200, (3, 12), generator=torch.Generator().manual_seed(0))
    attn = torch.ones_like(ids)
    attn[0, :4] = 0
    grads = []
    for on in (False, True):
        policy = place_policy(SVFPolicy({n: int(s.shape[0]) for n, (_, s, _) in svd.items()}, SVFConfig()), model)
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.1)
        with attached(model, svd, policy), recomputed(model, on):
            out = model(input_ids=ids, attention_mask=attn, use_cache=False).logits
            out.log_softmax(-1)[:, -4:].sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.parameters()]))
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())  # switched off after


def test_run_refuses_a_profile_that_does_not_fit_before_anything_starts(t2_home, data_dir):
    """`t2 run` plans first: a budget the profile cannot fit is one line (exit 2), before a Prefect server."""
    out = t2_inproc("run", "full-paper", "--profile", "tiny", "--memory-gb", "0.1", "--data-dir", str(data_dir))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "profile tiny does not fit this machine: needs" in out.stderr and "t2 plan --profile tiny" in out.stderr
    assert not (t2_home / "catalog.duckdb").exists()  # nothing ran, nothing was written


def test_a_started_vllm_server_is_counted_beside_every_later_stage(data_dir):
    """The qwen profile's vLLM server lives from the first stage that asks it to the end of the process, so a
    later hf-only stage (a LoRA baseline) needs its own peak plus the server's (a run that forgot it was
    killed for memory: docs/performance.md)."""
    from flows.plan import plan_flow
    from t2core.profiles import get_profile

    p = plan_flow(get_profile("qwen"), Devices(host_bytes=int(64 * GB)), data_dir=str(data_dir))
    first = next(i for i, s in enumerate(p.stages) if s.sampler_bytes)
    assert all(s.sampler_bytes == 0 for s in p.stages[:first])
    assert all(s.sampler_bytes == p.stages[first].sampler_bytes for s in p.stages[first:])
    lora = next(s for s in p.stages[first:] if s.label.startswith("baseline:lora"))
    assert p.host_peak >= lora.host_bytes + lora.sampler_bytes


def test_a_part_of_a_flow_is_planned_alone(t2_home, data_dir):
    """`t2 run --stages` runs only the stages its patterns select (the others are read back), so its fit check
    plans those: the qwen profile's evaluations fit a budget its trainers do not (flows/stages.py `matches`)."""
    import re

    from flows.plan import fit_plan
    from t2core.profiles import get_profile

    budget = Devices(host_bytes=int(21.5 * GB))
    whole = fit_plan(get_profile("qwen"), budget, data_dir=str(data_dir))
    part = fit_plan(get_profile("qwen"), budget, data_dir=str(data_dir), only=("eval:mbpp*", "eval:humaneval*"))
    assert whole.misfit() is not None and part.misfit() is None
    assert {s.label for s in part.stages} == {"eval:mbpp", "eval:mbpp:svf", "eval:mbpp:lora", "eval:humaneval",
                                              "eval:humaneval:lora"}

    def needs(*stages):
        out = t2_inproc("run", "full-paper", "--profile", "qwen", "--memory-gb", "1", "--data-dir", str(data_dir),
                        *stages)
        assert out.returncode == 2 and "does not fit this machine" in out.stderr, out.stderr
        return float(re.search(r"needs ([\d.]+) GB", out.stderr).group(1))

    assert needs("--stages", "eval:humaneval") < needs()
    assert not (t2_home / "catalog.duckdb").exists()  # refused before anything ran
