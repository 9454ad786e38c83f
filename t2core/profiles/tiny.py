"""`tiny`: tiny-random, a few samples per benchmark, seconds; for CI and flow tests."""

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

_TINY_RL = (("steps", 2), ("batch_size", 2), ("train_limit", 8), ("valid_limit", 3), ("valid_every", 2),
            ("max_new_tokens", 4), ("temperature", 1.0))

register_profile(Profile(
    # fp32 on every machine: the tests compare its numbers across machines and samplers
    name="tiny", model="tiny-random", batch_size=4, max_new_tokens=8, dtype="float32",
    evals=tuple(EvalSlice(t, limit=3) for t in (*PAPER_TASKS, "arc_easy_cloze")),
    trains=tuple(TrainSlice(t, _TINY_RL) for t in (*TRAIN_TASKS, "arc_easy_cloze")),
    baselines=(BaselineSlice("arc_easy", "lora", (("steps", 2), ("batch_size", 2), ("train_limit", 8))),
               BaselineSlice("arc_easy", "lora-pg")),
    adapt=AdaptSettings(experts=("gsm8k", "mbpp", "arc_easy_cloze"),
                        unseen=(EvalSlice("math", limit=3), EvalSlice("humaneval", limit=3),
                                EvalSlice("arc_challenge_cloze", limit=3)),
                        cls=_TINY_RL, shots=3, light_shots=2, cem=(("population", 4), ("generations", 2))),
    # transfer onto a twin (same shapes, other weights: the paper's setting in miniature)
    ablations=AblationSettings(
        task="arc_easy_cloze", steps=2, in_full_paper=True,
        evals=(EvalSlice("arc_easy_cloze", limit=3), EvalSlice("arc_challenge_cloze", limit=3)),
        variants=(AblationVariant("svf", "pg", "mlp"), AblationVariant("svf", "pg", "attn"),
                  AblationVariant("svf", "ntp", "mlp", (("batch_size", 2), ("train_limit", 8))),
                  AblationVariant("lora", "pg", "attn"),
                  AblationVariant("lora", "ntp", "attn", (("batch_size", 2), ("train_limit", 8))))),
    transfer=TransferSettings(dst="tiny-random-twin", experts=("arc_easy_cloze",),
                              evals=(EvalSlice("arc_easy_cloze", limit=3),),
                              unseen=(EvalSlice("arc_challenge_cloze", limit=3),), few_shot=True),
    description="tiny random model, 3 samples per benchmark: seconds (CI, flow tests)",
))
