"""dtype "auto" (issue 19): the rule per machine, the cached probe, and the resolved dtype in every id."""

from __future__ import annotations

from dataclasses import replace

import pytest

from t2core import precision
from t2core.precision import Choice, Machine, decide
from t2ops.model import ident_of

AVX2 = Machine(cuda=False, cuda_bf16=False, cuda_name="", capability="AVX2", flags=frozenset({"avx2", "fma"}),
               cpu_model="AMD EPYC 7B12")
ZEN4 = Machine(cuda=False, cuda_bf16=False, cuda_name="", capability="AVX512",
               flags=frozenset({"avx2", "avx512f", "avx512_bf16"}), cpu_model="AMD EPYC 9B14")


def _never():
    raise AssertionError("the probe must not run here")


@pytest.fixture
def machine_choice():
    """Set the process's resolution of "auto" for one test, then forget it."""
    yield lambda c: precision.reset_for_tests(c)
    precision.reset_for_tests(None)


def test_an_avx2_cpu_gets_float32_without_a_probe():
    c = decide(AVX2, probe=_never)
    assert (c.dtype, c.native_bf16, c.ratio) == ("float32", False, None)
    assert "no native bf16" in c.reason and "AVX2" in c.reason


def test_bf16_units_with_kernels_capped_at_avx2_get_float32_without_a_probe():
    """ATEN_CPU_CAPABILITY=avx2 on a Zen 4: the flags say bf16, but ATen runs its AVX2 kernels."""
    capped = replace(ZEN4, capability="AVX2")
    assert decide(capped, probe=_never).dtype == "float32"


def test_native_bf16_is_chosen_only_when_the_probe_finds_it_faster():
    fast = decide(ZEN4, probe=lambda: (0.45, False))
    assert (fast.dtype, fast.ratio) == ("bfloat16", 0.45)
    slow = decide(ZEN4, probe=lambda: (1.3, True))
    assert (slow.dtype, slow.cached) == ("float32", True)
    assert "not faster" in slow.reason
    amx = replace(ZEN4, capability="AVX512", flags=frozenset({"amx_bf16"}))
    assert decide(amx, probe=lambda: (0.3, False)).dtype == "bfloat16"


def test_cuda_follows_the_device():
    gpu = Machine(cuda=True, cuda_bf16=True, cuda_name="NVIDIA H100", capability="AVX2", flags=frozenset(),
                  cpu_model="x")
    assert decide(gpu, probe=_never).dtype == "bfloat16"
    old = replace(gpu, cuda_bf16=False, cuda_name="Tesla T4")
    assert decide(old, probe=_never).dtype == "float32"


def test_the_probe_runs_once_per_machine_and_torch_version(monkeypatch, tmp_path):
    monkeypatch.setenv("T2_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(precision, "probe_bf16", lambda: calls.append(1) or 0.5)
    assert precision._probe_cached(ZEN4) == (0.5, False)
    assert precision._probe_cached(ZEN4) == (0.5, True)
    assert len(calls) == 1
    other = replace(ZEN4, cpu_model="Intel Xeon 8480")
    assert precision._probe_cached(other) == (0.5, False) and len(calls) == 2
    assert len(list((tmp_path / "precision").glob("*.json"))) == 2


def test_the_real_probe_is_quick_and_positive():
    import time

    t0 = time.perf_counter()
    ratio = precision.probe_bf16()
    assert ratio > 0 and time.perf_counter() - t0 < 2.0  # the budget is 0.2 s; 2 s leaves a busy machine room


def test_settings_hold_the_resolved_dtype_never_auto(machine_choice):
    from t2core.adapt.cem import CEMConfig
    from t2core.adapt.fewshot import FewShotConfig
    from t2core.sampling import GenerationConfig
    from t2core.training.config import RLConfig
    from t2core.training.ntp import NTPConfig

    machine_choice(Choice("bfloat16", "mocked", "cpu", "AVX512", True, 0.5))
    assert GenerationConfig(dtype="auto").dtype == "bfloat16"
    assert RLConfig(task="gsm8k", dtype="auto").dtype == "bfloat16"
    assert NTPConfig(task="gsm8k", dtype="auto").dtype == "bfloat16"
    assert FewShotConfig(task="arc_challenge_cloze", cem=CEMConfig(), dtype="auto").dtype == "bfloat16"
    assert GenerationConfig(dtype="float32").dtype == "float32"  # an explicit dtype stays as given


def test_the_same_request_on_an_avx512_and_an_avx2_machine_is_two_runs(machine_choice, data_dir, tiny):
    """The resolved dtype is in the run id: the request "auto" names two runs on two kinds of machine, and each
    is the run an explicit request for that dtype names."""
    from t2core.profiles import get_profile
    from t2core.training.config import RLConfig
    from t2ops import evaluation, training

    smol = get_profile("smol")
    assert smol.dtype == "auto"

    def ids():
        ev = smol.eval_config(smol.evals[0])
        eval_id = evaluation.OP.plan(evaluation.EvalRequest(ev, None, "hf", str(data_dir)), ident_of(tiny)).run_id
        rl = RLConfig(task="gsm8k", steps=2, dtype="auto")
        train_id = training.OP.plan(training.TrainRequest(rl, "hf", str(data_dir)), ident_of(tiny)).run_id
        return ev.generation.dtype, eval_id, train_id

    machine_choice(decide(ZEN4, probe=lambda: (0.45, False)))
    on_zen4 = ids()
    machine_choice(decide(AVX2))
    on_avx2 = ids()
    assert (on_zen4[0], on_avx2[0]) == ("bfloat16", "float32")
    assert on_zen4[1] != on_avx2[1] and on_zen4[2] != on_avx2[2]
    explicit = training.OP.plan(training.TrainRequest(RLConfig(task="gsm8k", steps=2, dtype="float32"), "hf",
                                                   str(data_dir)), ident_of(tiny)).run_id
    assert explicit == on_avx2[2]


def test_a_bad_dtype_is_one_clear_error():
    from tests.conftest import t2_inproc

    r = t2_inproc("eval", "--model", "tiny-random", "--task", "gsm8k", "--dtype", "bf16")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert "'bf16'" in r.stderr and "auto" in r.stderr
    from t2core.errors import ConfigError
    from t2core.settings import check_dtype

    with pytest.raises(ConfigError, match="resolve 'auto' first"):
        check_dtype("auto", "materialised(dtype)")  # compute paths take only a concrete dtype


def test_doctor_explains_the_machine():
    from tests.conftest import t2_inproc

    r = t2_inproc("doctor")
    assert r.returncode == 0, r.stderr
    for what in ("cpu", "dtype auto", "bf16 probe", "threads", "gpu", "sandbox", "vllm env", "T2_HOME", "catalog"):
        assert what in r.stdout
    assert precision.auto_choice().dtype in r.stdout
