"""Gemma 3 (text models: `gemma3_text`; the multimodal checkpoints' language model: `gemma3`): Llama's
projection names; its extra norms (q_norm, k_norm, pre/post-feedforward) are not linear layers."""

from t2core.models.targets import FamilyTargets, register_family

GEMMA3 = FamilyTargets(
    mlp=("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    attn=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"))
register_family("gemma3_text", GEMMA3)
register_family("gemma3", GEMMA3)
