"""Llama (SmolLM2, Llama 3) and Mistral: gate/up/down in the MLP, q/k/v/o in attention."""

from t2core.models.targets import LLAMA_TARGETS, register_family

register_family("llama", LLAMA_TARGETS)
register_family("mistral", LLAMA_TARGETS)
