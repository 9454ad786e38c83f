"""`tiny-random`: a 2-layer Llama with seeded random weights, built from a config (no files).

Fast tests and the CI profile run the whole pipeline on it in seconds.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import torch

from t2core.hashing import model_weights_hash
from t2core.models.registry import LoadedModel, ModelSpec, register_model

if TYPE_CHECKING:
    from transformers import LlamaConfig


def tiny_config(vocab_size: int, hidden: int = 64, intermediate: int = 128, layers: int = 2) -> LlamaConfig:
    from transformers import LlamaConfig  # imported when a model is built: commands that fail early stay fast

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )


def load_tiny(alias: str = "tiny-random", seed: int = 0, seed_offset: int = 0, **shape) -> LoadedModel:
    from transformers import LlamaForCausalLM

    from t2core.models.tokenizer import byte_level_tokenizer

    tok = byte_level_tokenizer()
    cfg = tiny_config(len(tok), **shape)
    seed = seed + seed_offset
    cfg.pad_token_id, cfg.eos_token_id = tok.pad_token_id, tok.eos_token_id
    cfg.bos_token_id = tok.bos_token_id
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return LoadedModel(
        alias=alias, model=model, tokenizer=tok, weights_hash=model_weights_hash(model), source=f"random:seed={seed}"
    )


register_model(ModelSpec(alias="tiny-random", loader=load_tiny, description="2-layer random Llama for tests"))
# Destinations of cross-model transfer in tests and the tiny profile: a twin (same shapes, other weights,
# like Llama-3-8B -> Mistral-7B in the paper) and a model of another depth and width.
register_model(ModelSpec(alias="tiny-random-twin", loader=partial(load_tiny, seed_offset=1000),
                         description="tiny-random's twin: same shapes, other random weights (transfer tests)"))
register_model(ModelSpec(alias="tiny-random-deep", loader=partial(load_tiny, seed_offset=2000, hidden=96,
                                                                     intermediate=160, layers=3),
                         description="3-layer random Llama, other widths than tiny-random (transfer tests)"))
