"""`smol`: the embedded SmolLM2-135M on small slices; the README default on a laptop CPU."""

from __future__ import annotations

from t2core.profiles.settings import (
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

# CPU budget for generated answers (GSM8K, MBPP). Rollouts are sampled (T=0.7) with
# batch-normalised rewards: at 135M greedy rollouts are nearly all wrong (or, for lettered
# ARC, nearly all "A"), which leaves almost no mixed rewards to learn from.
_SMOL_RL = (("batch_size", 16), ("temperature", 0.7), ("reward_norm", True), ("lr", 5e-3),
            ("valid_limit", 100), ("valid_every", 10))
# ARC in the cloze formulation (t2core/tasks/arc_cloze.py): the answer is drawn from the
# model's own distribution over the item's options (T=1), so rewards are mixed from step 1.
# Micro-batches of 4 prompts: `make run` must fit an 8 GB laptop with room to spare (issue 43: <= 4 GB).
# The whole batch in one differentiable forward was the run's largest stage (`t2 plan --profile smol`: ~8.6 GB);
# in micro-batches the draw comes from a forward without a graph and each micro-batch is recomputed with one,
# ~1.3-1.4x this stage's time (bench/choice.py). The expert is the same either way (not in the run id).
_SMOL_CLOZE = (("batch_size", 16), ("temperature", 1.0), ("reward_norm", True), ("lr", 5e-3),
               ("valid_limit", 200), ("valid_every", 10), ("steps", 30), ("micro_batch_size", 4))
# GSM8K and MBPP: 3 steps of 8 (at 135M, 5 steps never beat base on validation, 0/16 and 3/16, in fp32 and
# the experts stayed z = 1; the signal is weak, docs/results.md)
# micro-batches of 2 answers in the differentiable forward (~8 GB for the 8 answers at once; the rollouts'
# generation dominates these steps, so the smaller forwards cost little)
_SMOL_LONG = (("batch_size", 8), ("steps", 3), ("max_new_tokens", 160), ("valid_limit", 16), ("valid_every", 3),
              ("micro_batch_size", 2))

# LoRA-NTP on CPU: a few dozen AdamW steps on reference solutions (paper: r16, alpha 32, q/v).
_SMOL_NTP = (("steps", 30), ("batch_size", 8), ("lr", 5e-4), ("max_len", 384), ("micro_batch_size", 4))

register_profile(Profile(
    name="smol", model="smollm2-135m", batch_size=16, max_new_tokens=256,
    # U and V in bf16 where dtype auto chose bf16 (they are cast to it for every matmul anyway): the same numbers
    # from half their memory, without a bf16 copy of every factor kept per forward for the backward (issue 43)
    factor_dtype="auto",
    # Base-model slices: Table 1's training tasks, and MATH and HumanEval for Table 2 (ARC-Challenge cloze's base
    # run is the adaptation slice's; the letter ARC-Challenge, at chance at 135M and in no table, is left out).
    evals=(EvalSlice("gsm8k", limit=16), EvalSlice("mbpp", limit=16), EvalSlice("arc_easy", limit=200),
           EvalSlice("math", limit=16), EvalSlice("humaneval", limit=16), EvalSlice("arc_easy_cloze", limit=200)),
    # The reasoning expert learns ARC-Easy in the cloze formulation: with letters, SmolLM2's
    # answer does not depend on the question (docs/results.md).
    trains=(TrainSlice("arc_easy_cloze", _SMOL_CLOZE),
            TrainSlice("gsm8k", _SMOL_RL + _SMOL_LONG),
            TrainSlice("mbpp", _SMOL_RL + _SMOL_LONG)),
    # LoRA-NTP: 30 steps of 8 on ARC-Easy cloze; 15 of 4 on GSM8K and MBPP, whose ~250-token solutions made these
    # two the most expensive stages after the ARC expert on a 2-core fp32 machine (docs/performance.md; at 20 of 4
    # their Table 1 cells equalled base's, 0/16 and 3/16)
    baselines=(BaselineSlice("gsm8k", "lora", _SMOL_NTP + (("batch_size", 4), ("steps", 15), ("micro_batch_size", 2))),
               BaselineSlice("mbpp", "lora", _SMOL_NTP + (("batch_size", 4), ("steps", 15), ("micro_batch_size", 2))),
               BaselineSlice("arc_easy_cloze", "lora", _SMOL_NTP)),
    # Self-adaptation on 2 cores (the budget is `make run` <= 60 min in all on a 2-core AVX2 machine in fp32,
    # issue 19): ARC-Challenge cloze on the first 200 test items (seven full evaluations and two pass-1
    # classifications of it were half of the run at 1,172, 17.5 of 70.7 min at 400, 12.7 of 61.2 at 300;
    # paired McNemar against base at every n); the classification
    # expert trains 10 steps of 8 (its validation accuracy was 0.956 at step 10 and 1.000 at step 20, in
    # fp32 on 2 AVX2 cores: docs/performance.md); MATH and HumanEval on 16 each; the letter
    # ARC-Challenge (at chance at 135M) is left out. CEM with 16 candidates (the paper's 32 cost ~1 min a
    # generation in fp32 on 2 AVX2 cores).
    # At most 10 CEM generations (16 candidates x 10 shots each), on the
    # cloze task only (a generated-answer CEM costs minutes per generation); a light search on 3 shots (Table 10,
    # ~0.5 min + one 2-min evaluation). LoRA on the unseen tasks: the
    # one of the same category only (three LoRAs on three slices would cost ~15 min).
    adapt=AdaptSettings(experts=("gsm8k", "mbpp", "arc_easy_cloze"),
                        unseen=(EvalSlice("arc_challenge_cloze", limit=200), EvalSlice("math", limit=16),
                                EvalSlice("humaneval", limit=16)),
                        formulation="choice",
                        # micro-batches of 2 and validation 4 questions at a time: its validation of 16 at once
                        # (each with 4 candidates continuing from their own copy of the prompt's cache) held
                        # 4.0 GB above the model, its step 2.3 GB (issue 43, measured)
                        cls=_SMOL_CLOZE + (("steps", 10), ("batch_size", 8), ("valid_limit", 90),
                                           ("micro_batch_size", 2), ("gen_batch_size", 4)),
                        shots=10, light_shots=3, cem=(("population", 16), ("generations", 10), ("patience", 3)),
                        few_shot_tasks=("arc_challenge_cloze",), loras="category"),
    # Transfer is its own flow here (`t2 run transfer --profile smol --dst qwen2.5-coder-0.5b`), outside
    # `make run`'s budget: the ARC-Easy cloze expert (the one that learns at 135M) on 500 test items of
    # ARC-Easy and ARC-Challenge cloze, ordered / shuffled / random against the destination's base.
    # Table 4 (`t2 run ablations --profile smol`, its own flow): where SmolLM2 learns, ARC-Easy cloze, 30 steps
    # each (the expert's budget: SVF-PG mlp is the profile's expert and LoRA-NTP attn its LoRA, both reused),
    # zero-shot on ARC-Challenge cloze. SVF-NTP gets SVF-PG's learning rate (LoRA's 5e-4 barely moves z).
    ablations=AblationSettings(
        task="arc_easy_cloze", steps=30,
        evals=(EvalSlice("arc_easy_cloze", limit=200), EvalSlice("arc_challenge_cloze", limit=500)),
        variants=(AblationVariant("svf", "pg", "mlp"), AblationVariant("svf", "pg", "attn"),
                  AblationVariant("svf", "pg", "both"), AblationVariant("svf", "ntp", "mlp", (("lr", 5e-3),)),
                  AblationVariant("lora", "pg", "attn"), AblationVariant("lora", "ntp", "attn"),
                  AblationVariant("lora", "ntp", "both"))),
    transfer=TransferSettings(experts=("arc_easy_cloze",), evals=(EvalSlice("arc_easy_cloze", limit=500),),
                              unseen=(EvalSlice("arc_challenge_cloze", limit=500),)),
    description="embedded SmolLM2-135M on small slices: minutes on a laptop CPU",
))
