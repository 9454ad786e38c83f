"""One file is enough: a task, a report, a strategy, a sampler, a PEFT method and a profile defined and
registered here, outside the packages, reach the CLI's help, run end to end on the tiny model through
`t2 eval`, `t2 adapt`, `t2 baseline`, show in `t2 report` and in what `t2 plan` plans for the flow
(docs/architecture.md, "Adding things")."""

import hashlib
import json
from pathlib import Path

from catalog.reports import register_report
from catalog.reports.common import Table
from t2core.tasks.base import Dataset, MathSample, Score, Task, register_task
from tests.conftest import catalog_rows, t2_inproc


class ToySums(Task):
    """Two-number sums from a JSONL file: the smallest generated-answer task."""

    name = "toy_sums"
    family = "math"
    category = "math"
    version = "1"
    splits = ("test",)
    max_new_tokens = 4

    def load(self, split: str, data_dir: Path | None) -> Dataset:
        self.check_split(split)
        f = Path(data_dir) / "toy_sums.jsonl"
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        samples = [MathSample(id=str(i), question=f"{r['a']} + {r['b']} = ?", solution="", answer=str(r["a"] + r["b"]))
                   for i, r in enumerate(rows)]
        return Dataset(self.name, split, samples, {str(f): hashlib.sha256(f.read_bytes()).hexdigest()}, len(rows))

    def messages(self, sample):
        return [{"role": "user", "content": sample.question}]

    def score(self, sample, output: str) -> Score:
        got = output.strip().split()[:1]
        return Score(got[0] if got else "", bool(got) and got[0] == sample.answer)


register_task(ToySums())


def accuracy_by_task(cat, model=None):
    _, rows = cat.query("SELECT r.task, m.value FROM runs r JOIN metrics m ON m.run_id = r.run_id AND "
                        "m.name = 'n' WHERE r.kind = 'eval' ORDER BY r.task")
    return Table("Table 97: evaluated items by task", ["task", "n"], [[t, int(n)] for t, n in rows])


def test_a_task_and_a_report_from_one_file_each_run_end_to_end(t2_home, tmp_path):
    register_report("table", 97, accuracy_by_task)
    data = tmp_path / "data"
    data.mkdir()
    (data / "toy_sums.jsonl").write_text("".join(json.dumps({"a": a, "b": b}) + "\n" for a, b in [(1, 2), (3, 4)]))

    r = t2_inproc("eval", "--model", "tiny-random", "--task", "toy_sums", "--split", "test", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert catalog_rows(t2_home, "SELECT count(*) FROM samples") == [(2,)]
    out = t2_inproc("report", "--table", "97", "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["task,n", "toy_sums,2"]


# --- a strategy, a sampler, a PEFT method and a profile, each one definition and one register call here ---

from dataclasses import replace  # noqa: E402

from t2core.adapt import Decision, Strategy, register_strategy  # noqa: E402
from t2core.methods import Method, register_method  # noqa: E402
from t2core.methods.base import peft_module  # noqa: E402
from t2core.profiles import get_profile, register_profile  # noqa: E402
from t2core.sampling import register_sampler  # noqa: E402
from t2core.sampling.base import Completion, Sampler  # noqa: E402


@register_strategy
class FirstExpert(Strategy):
    """Every question to the first expert it is given, by id (`experts = "set"`: no categories needed)."""

    name = "toy-first-expert"
    experts = "set"

    @classmethod
    def spec_of(cls, inputs):
        return cls.name

    @classmethod
    def build(cls, inputs):
        return cls()

    @property
    def spec(self) -> str:
        return self.name

    def decide(self, sampler, questions, experts, **kw):
        return [Decision("math", experts.ids[:1]) for _ in questions]


class Adder(Sampler):
    """Answers `a + b = ?` by adding: a sampler with no model at all."""

    name = "toy-adder"

    def __init__(self, **_) -> None:
        pass

    def generate(self, conversations, cfg, progress=None, svf=None, rows=None):
        self.check_svf(svf)
        out = []
        for conv in conversations:
            a, _, b, *_ = conv[-1]["content"].split()
            out.append(Completion(str(int(a) + int(b)), 0, 1))
        return out


register_sampler("toy-adder", Adder)

register_method(Method(  # LoRA on the keys only: a PEFT method is its adapter config, trained by the PEFT trainer
    name="toy-lora-k", product="toy-lora-k", objective="ntp", selector="toy-lora-k", covers="the NTPConfig",
    targets=lambda cfg, family: "k_proj", label="LoRA-k",
    peft=lambda cfg, family: peft_module().LoraConfig(r=4, lora_alpha=8, target_modules=["k_proj"],
                                                      task_type="CAUSAL_LM")))

register_profile(replace(get_profile("tiny"), name="toy-profile",
                         adapt=replace(get_profile("tiny").adapt, strategies=("prompt", "toy-first-expert"))))


def test_a_strategy_sampler_method_and_profile_from_one_file_reach_the_help_the_runs_and_the_reports(
        tiny, t2_home, tmp_path, data_dir, monkeypatch):
    import re

    from tests.conftest import stored_expert_files as _stored_experts

    monkeypatch.setenv("COLUMNS", "250")  # one line per option in the help
    helps = {cmd: " ".join(t2_inproc(cmd, "--help").stdout.split()) for cmd in ("adapt", "ask", "eval", "baseline",
                                                                                 "run", "plan")}
    assert "toy-first-expert" in helps["adapt"] and "toy-first-expert" in helps["ask"]  # it decides per question
    assert "toy-adder" in helps["adapt"] and "toy-adder" in helps["run"]
    assert "toy-lora-k (LoRA-k)" in helps["baseline"] and "toy-profile" in helps["run"] + helps["plan"]

    # the sampler: an evaluation with it, end to end
    data = tmp_path / "data"
    data.mkdir()
    (data / "toy_sums.jsonl").write_text("".join(json.dumps({"a": a, "b": b}) + "\n" for a, b in [(1, 2), (3, 4)]))
    r = t2_inproc("eval", "--model", "tiny-random", "--task", "toy_sums", "--split", "test", "--data-dir", str(data),
                  "--sampler", "toy-adder")
    assert r.returncode == 0, r.stderr
    assert catalog_rows(t2_home, "SELECT count(*), bool_and(correct) FROM samples") == [(2, True)]

    # the strategy: a two-pass run, then its row in Tables 2 and 3
    _, _, refs = _stored_experts(tiny, t2_home, 2, seed=41)
    common = ("--task", "arc_challenge_cloze", "--profile", "tiny", "--limit", "2", "--data-dir", str(data_dir))
    r = t2_inproc("adapt", "--strategy", "toy-first-expert", "--experts", ",".join(str(x.path) for x in refs), *common)
    assert r.returncode == 0, r.stderr
    first = min(x.id for x in refs)
    assert catalog_rows(t2_home, "SELECT DISTINCT decision FROM samples s JOIN runs r USING (run_id) WHERE "
                                 "r.strategy = 'toy-first-expert'") == [(f"math->{first}",)]
    t2 = t2_inproc("report", "--table", "2", "--format", "csv")
    assert t2.returncode == 0, t2.stderr
    assert any(line.split(",")[1] == "toy-first-expert" for line in t2.stdout.splitlines()[1:])
    t3 = t2_inproc("report", "--table", "3", "--format", "csv")
    assert t3.returncode == 0 and ",toy-first-expert," in t3.stdout, t3.stderr

    # the method: one file, trained by `t2 baseline`, evaluated, in Table 1
    r = t2_inproc("baseline", "--model", "tiny-random", "--task", "arc_easy", "--method", "toy-lora-k", "--steps", "1",
                  "--batch-size", "1", "--train-limit", "2", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    aid = re.search(r"toy-lora-k:[0-9a-f]{24}", r.stdout).group(0)
    r = t2_inproc("eval", "--model", "tiny-random", "--task", "arc_easy", "--expert", aid, "--limit", "2",
                  "--max-new-tokens", "2", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    t1 = t2_inproc("report", "--table", "1", "--format", "csv")
    assert t1.returncode == 0 and any(line.split(",")[1] == "toy-lora-k" for line in t1.stdout.splitlines()[1:])

    # the profile: its strategies are what the full-paper flow plans
    plan = t2_inproc("plan", "--profile", "toy-profile", "--gpus", "0", "--data-dir", str(data_dir))
    assert plan.returncode == 0, plan.stderr
    stages = {line.split("│")[1].strip() for line in plan.stdout.splitlines() if line.startswith("│")}
    assert "adapt:toy-first-expert:arc_challenge_cloze" in stages and "adapt:prompt:arc_challenge_cloze" in stages
    assert not any(s.startswith(("adapt:cls-expert:", "train:dispatch")) for s in stages)  # nothing needs z^c
    # nor a search: no "few-shot:<task>" (the transfer's cross-model one, "few-shot:<destination>:<task>", stays)
    assert not any(re.fullmatch(r"(adapt:)?few-shot(-light)?:[a-z0-9_]+", s) for s in stages)


# A model family: GPT-NeoX names its projections otherwise than Llama (dense_h_to_4h, query_key_value, ...).
# One register_family call says which; a model alias of that family (here a random 2-layer GPT-NeoX built from
# a config, as tiny-random is built) is one register_model call.
def _load_tiny_neox(alias: str = "test-tiny-neox", seed: int = 0):
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from t2core.hashing import model_weights_hash
    from t2core.models import LoadedModel
    from t2core.models.tokenizer import byte_level_tokenizer

    tok = byte_level_tokenizer()
    cfg = GPTNeoXConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                        eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GPTNeoXForCausalLM(cfg)
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    return LoadedModel(alias=alias, model=model, tokenizer=tok, weights_hash=model_weights_hash(model),
                       source=f"random:seed={seed}")


def _register_neox() -> None:
    from t2core.models import ModelSpec, register_model
    from t2core.models.registry import model_aliases
    from t2core.models.targets import _FAMILIES, FamilyTargets, register_family

    if "gpt_neox" not in _FAMILIES:
        register_family("gpt_neox", FamilyTargets(mlp=("mlp.dense_h_to_4h", "mlp.dense_4h_to_h"),
                                                  attn=("attention.query_key_value", "attention.dense"),
                                                  ia3=("attention.query_key_value", "mlp.dense_4h_to_h"),
                                                  ia3_feedforward=("mlp.dense_4h_to_h",)))
    if "test-tiny-neox" not in model_aliases():
        register_model(ModelSpec(alias="test-tiny-neox", loader=_load_tiny_neox,
                                 description="2-layer random GPT-NeoX (a family from a test file)"))


def test_a_model_family_from_one_file_is_listed_decomposed_and_evaluated(t2_home, data_dir):
    """The family's own module names are what SVD decomposes (not Llama's), `t2 models` lists the alias, and
    an evaluation and an SVF expert's training run end to end on it through the CLI."""
    _register_neox()
    listed = t2_inproc("models")
    assert listed.returncode == 0 and "test-tiny-neox" in listed.stdout
    svd = t2_inproc("svd", "--model", "test-tiny-neox", "--targets", "both")
    assert svd.returncode == 0, svd.stderr
    ((n,),) = catalog_rows(t2_home, "SELECT n_matrices FROM decompositions")
    assert n == 2 * 4  # 2 blocks x (dense_h_to_4h, dense_4h_to_h, query_key_value, dense)
    names = {r[0] for r in catalog_rows(t2_home, "SELECT name FROM decomposition_matrices")}
    assert "gpt_neox.layers.1.attention.query_key_value" in names and not any("gate_proj" in x for x in names)
    tr = t2_inproc("train", "--model", "test-tiny-neox", "--task", "arc_easy", "--profile", "tiny", "--steps", "1")
    assert tr.returncode == 0, tr.stderr
    ((expert,),) = catalog_rows(t2_home, "SELECT expert_id FROM experts")
    ev = t2_inproc("eval", "--model", "test-tiny-neox", "--task", "arc_easy", "--limit", "2", "--max-new-tokens", "2",
                   "--expert", expert)
    assert ev.returncode == 0, ev.stderr
