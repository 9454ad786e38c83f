"""Profiles are data, checked when they are defined; their settings reach the operations."""

import pytest

from t2core.errors import ConfigError
from t2core.profiles import BaselineSlice, TrainSlice, get_profile


def test_a_typo_in_an_override_fails_when_the_profile_is_defined():
    with pytest.raises(ConfigError, match=r"train slice gsm8k: unknown RLConfig setting 'step'; known: .*steps"):
        TrainSlice("gsm8k", (("step", 3),))
    with pytest.raises(ConfigError, match=r"baseline lora/mbpp: unknown NTPConfig setting 'rnak'"):
        BaselineSlice("mbpp", "lora", (("rnak", 8),))
    with pytest.raises(ConfigError, match=r"baseline lora-pg/mbpp: unknown RLConfig setting 'max_len'"):
        BaselineSlice("mbpp", "lora-pg", (("max_len", 8),))  # an NTP setting on a REINFORCE baseline


def test_the_profile_dtype_reaches_training():
    from t2core.training.config import RLConfig

    paper = get_profile("paper")  # bf16, and its training slices do not repeat it
    assert RLConfig(task="gsm8k", **paper.train_overrides("gsm8k")).dtype == "bfloat16"
    assert RLConfig(task="gsm8k", **get_profile("tiny").train_overrides("gsm8k")).dtype == "float32"


def test_a_profile_resolves_each_operation_config_once():
    from dataclasses import replace

    from t2core.errors import UnknownNameError
    from t2core.precision import resolve_dtype
    from t2core.profiles import EvalSlice, Profile

    smol = get_profile("smol")
    gsm = smol.eval_config(EvalSlice("gsm8k", limit=16))
    math = smol.eval_config(EvalSlice("math", limit=16))
    arc = smol.eval_config(EvalSlice("arc_easy_cloze", limit=16), seed=7)
    # the cap (256) where it is below the task's default (math 512), the task's own where lower (arc)
    assert (gsm.generation.max_new_tokens, math.generation.max_new_tokens) == (256, 256)
    assert arc.generation.max_new_tokens < 256 and arc.generation.seed == 7
    auto = resolve_dtype("auto")  # smol says auto: this machine's choice (bf16 on avx512_bf16, else float32)
    assert gsm.generation.dtype == auto and gsm.generation.batch_size == 16
    assert get_profile("paper").eval_config(EvalSlice("math")).generation.max_new_tokens is None  # the task's, later
    rl = smol.rl_config("gsm8k", lr=1e-3)
    assert (rl.dtype, rl.steps, rl.lr, rl.svf.targets, rl.seed) == (auto, 3, 1e-3, "mlp", smol.seed)
    with pytest.raises(UnknownNameError, match="unknown sampler 'vllm2'"):
        replace(smol, sampler="vllm2")
    assert Profile("p", "tiny-random", sampler="proc").sampler == "proc"


def test_a_light_search_must_use_fewer_shots_than_the_full_one():
    from t2core.profiles import AdaptSettings

    with pytest.raises(ConfigError, match=r"light_shots=10 must be between 1 and shots-1 \(9\)"):
        AdaptSettings(shots=10, light_shots=10)
    smol = get_profile("smol")  # Table 10 on smol: the light search is `t2 adapt --shots 3`'s run
    light = smol.few_shot_config("arc_challenge_cloze", split="train", shots=smol.adapt.light_shots)
    assert (light.shots, smol.few_shot_config("arc_challenge_cloze", split="train").shots) == (3, 10)


def test_the_qwen_profile_sizes_the_evidence_and_falls_back_to_hf_without_vllm(monkeypatch, tmp_path):
    qwen = get_profile("qwen")
    assert qwen.model == "qwen2.5-coder-0.5b" and qwen.sampler == "vllm" and qwen.dtype == "auto"
    limits = {sl.task: sl.limit for sl in (*qwen.evals, *qwen.adapt.unseen)}
    assert limits["humaneval"] is None and limits["arc_challenge_cloze"] is None  # all 164, all 1,172
    assert all(limits[t] >= 250 for t in ("gsm8k", "mbpp", "math"))
    assert {t.task for t in qwen.trains} == {"gsm8k", "mbpp", "arc_easy_cloze"}
    assert {b.method for b in qwen.baselines} == {"lora"} and qwen.adapt.searches("math")
    assert not qwen.adapt.searches("humaneval")  # no train or valid split: shots never come from test
    monkeypatch.setenv("T2_VLLM_PYTHON", str(tmp_path / "no-such-python"))
    fell, note = qwen.with_sampler_available()
    assert fell.sampler == "hf" and note.startswith("profile qwen: the vLLM environment is missing")
    assert note.endswith("Using the hf sampler instead.") and "\n" not in note
    assert get_profile("smol").with_sampler_available() == (get_profile("smol"), None)


def test_train_dispatch_under_a_profile_is_the_flows_classification_expert():
    """`t2 train --task dispatch --profile P` resolves the profile's adapt.cls settings, as the flow's
    classification expert does: the same config, so the same run id (it used RLConfig's defaults before)."""
    from t2core.profiles import get_profile, profile_names

    for name in profile_names():
        prof = get_profile(name)
        assert prof.rl_config("dispatch") == prof.cls_config(), name
    smol = get_profile("smol").rl_config("dispatch")
    assert (smol.batch_size, smol.steps, smol.micro_batch_size, smol.gen_batch_size) == (8, 10, 2, 4)
