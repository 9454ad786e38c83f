"""`paper`: Llama-3-8B-Instruct on the full test sets (paper §4); needs a GPU."""

from __future__ import annotations

from t2core.profiles.settings import (
    PAPER_TASKS,
    TRAIN_TASKS,
    AblationSettings,
    AblationVariant,
    AdaptSettings,
    BaselineSlice,
    EvalSlice,
    Profile,
    TrainSlice,
    TransferSettings,
    register_profile,
)

register_profile(Profile(
    name="paper", model="llama3-8b", batch_size=32,
    evals=tuple(EvalSlice(t) for t in PAPER_TASKS),
    # 256 rollouts per step cannot be scored in one differentiable forward of an 8B model: micro-batches
    # of 8 (an untested starting point: this project has no GPU run yet)
    trains=tuple(TrainSlice(t, (("batch_size", 256), ("steps", 200), ("kl_coef", 0.1), ("micro_batch_size", 8)))
                 for t in TRAIN_TASKS),
    baselines=tuple(BaselineSlice(t, m, (("steps", 200), ("batch_size", 32)) if m != "lora-pg" else ())
                    for t in TRAIN_TASKS for m in ("lora", "lora-pg")),
    # the paper's settings (§3.3, Appendix): cls-expert on 400 questions per training task, CEM with
    # population 32, elite 0.2, at most 100 generations, 10 shots; the light search's 3 shots are this
    # project's choice, not a number from the paper
    adapt=AdaptSettings(experts=TRAIN_TASKS, unseen=tuple(EvalSlice(t) for t in ("math", "humaneval", "arc_challenge")),
                        cls=(("train_limit", 1200), ("batch_size", 64), ("steps", 200)), shots=10, light_shots=3),
    # Table 4 as the paper ran it: Llama-3-8B on GSM8K, zero-shot on MATH
    ablations=AblationSettings(
        task="gsm8k", steps=200, evals=(EvalSlice("gsm8k"), EvalSlice("math")),
        variants=(AblationVariant("svf", "pg", "mlp"), AblationVariant("svf", "pg", "attn"),
                  AblationVariant("svf", "pg", "both"), AblationVariant("svf", "ntp", "attn"),
                  AblationVariant("lora", "pg", "attn"), AblationVariant("lora", "ntp", "attn"),
                  AblationVariant("lora", "ntp", "both"))),
    # the paper's transfer (§4.4): Llama-3-8B-Instruct's experts onto Mistral-7B-Instruct-v0.3 (same shapes)
    transfer=TransferSettings(dst="mistral-7b", evals=tuple(EvalSlice(t) for t in TRAIN_TASKS),
                              unseen=tuple(EvalSlice(t) for t in ("math", "humaneval", "arc_challenge")), few_shot=True),
    description="Llama-3-8B-Instruct, full test sets (paper §4): GPU",
))
