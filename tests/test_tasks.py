"""Dataset loaders on the real offline files: split sizes, conventions, hashes, errors."""

import gzip
import json

import pytest

from t2core.errors import DataError, UnknownNameError
from t2core.paths import resolve_data_dir
from t2core.tasks import get_task, load_split

# Split sizes from shared/datasets/README.md and the split conventions in t2core.tasks.
EXPECTED = {
    ("gsm8k", "train"): 3737, ("gsm8k", "valid"): 3736, ("gsm8k", "test"): 1319,
    ("arc_easy", "train"): 2251, ("arc_easy", "valid"): 570, ("arc_easy", "test"): 2376,
    ("arc_challenge", "train"): 1119, ("arc_challenge", "valid"): 299, ("arc_challenge", "test"): 1172,
    ("mbpp", "test"): 500, ("mbpp", "valid"): 90, ("mbpp", "train"): 374, ("mbpp", "prompt"): 10,
    ("mbpp_sanitized", "test"): 257, ("mbpp_sanitized", "valid"): 43, ("mbpp_sanitized", "train"): 120,
    ("humaneval", "test"): 164, ("math", "train"): 7500, ("math", "test"): 5000, ("math500", "test"): 500,
}


@pytest.mark.parametrize("task,split", sorted(EXPECTED))
def test_split_sizes(data_dir, task, split):
    ds = load_split(task, split, data_dir)
    assert len(ds) == EXPECTED[(task, split)]
    assert ds.files and all(len(h) == 64 for h in ds.files.values())


def test_recorded_hashes_match_readme(data_dir):
    assert list(load_split("gsm8k", "test", data_dir).files.values()) == [
        "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"]
    assert list(load_split("arc_easy", "valid", data_dir).files.values()) == [
        "f4364b808a68df6bf500ce1070fb0105d40cacd2391c210deb00ff83ba75d1f4"]


def test_gsm8k_parity_split(data_dir):
    train = load_split("gsm8k", "train", data_dir)
    valid = load_split("gsm8k", "valid", data_dir)
    assert train.samples[0].id == "gsm8k/train/0" and valid.samples[0].id == "gsm8k/train/1"
    assert not {s.id for s in train.samples} & {s.id for s in valid.samples}


def test_mbpp_id_ranges(data_dir):
    ids = [int(s.id.split("/")[1]) for s in load_split("mbpp", "valid", data_dir).samples]
    assert ids == list(range(511, 601))
    assert load_split("mbpp", "train", data_dir).samples[0].id == "mbpp/601"


def test_arc_numeric_keys_and_odd_choice_counts(data_dir):
    ds = load_split("arc_easy", "train", data_dir)
    numeric = [s for s in ds.samples if s.answer.isdigit()]
    assert len(numeric) == 102  # README: Easy train has 102 numeric answer keys
    assert all(s.answer in s.labels for s in ds.samples)
    assert {len(s.labels) for s in ds.samples} == {3, 4, 5}


def test_reference_answers_score_correct(data_dir):
    g = get_task("gsm8k")
    for s in load_split("gsm8k", "test", data_dir, limit=50).samples:
        assert g.score(s, s.solution + "\nThe answer is: " + s.answer).correct
    m = get_task("math500")
    for s in load_split("math500", "test", data_dir, limit=50).samples:
        assert m.score(s, s.solution).correct, s.id
    a = get_task("arc_challenge")
    for s in load_split("arc_challenge", "test", data_dir, limit=50).samples:
        assert a.score(s, f"The answer is {s.answer}").correct


def test_code_references_pass_and_wrong_code_fails(data_dir):
    h = get_task("humaneval")
    ds = load_split("humaneval", "test", data_dir, limit=20)
    assert all(h.score(s, f"```python\n{s.solution}\n```").correct for s in ds.samples)
    assert not h.score(ds.samples[0], "```python\ndef has_close_elements(a, b):\n    return None\n```").correct
    # a whole function without the stub's `from typing import List` still runs (imports are carried over)
    body = ds.samples[0].solution.split("    \"\"\"")[-1]
    whole = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n" + body.split("\n", 1)[1]
    assert h.score(ds.samples[0], f"```python\n{whole}\n```").correct
    # and a bare body continuing the stub works too
    assert h.score(ds.samples[0], body.split("\n", 1)[1]).correct
    mb = get_task("mbpp")
    ds = load_split("mbpp", "test", data_dir, limit=20)
    assert all(mb.score(s, f"```python\n{s.solution}\n```").correct for s in ds.samples)
    assert not mb.score(ds.samples[0], "```python\ndef nothing(): pass\n```").correct


def test_missing_data_dir_is_a_clear_error(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    monkeypatch.setenv("T2_DATA_DIR", str(missing))
    with pytest.raises(DataError, match=r"nope.*T2_DATA_DIR.*does not exist"):
        resolve_data_dir()


def test_incomplete_data_dir_names_the_file(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    with pytest.raises(DataError, match=r"gsm8k/test.jsonl is missing"):
        load_split("gsm8k", "test", tmp_path)


def test_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    good = json.dumps({"question": "1+1?", "answer": "2\n#### 2"})
    (tmp_path / "gsm8k" / "test.jsonl").write_text(good + "\n{not json\n")
    with pytest.raises(DataError, match=r"test.jsonl:2: not valid JSON"):
        load_split("gsm8k", "test", tmp_path)
    (tmp_path / "gsm8k" / "test.jsonl").write_text(good + "\n" + json.dumps({"question": "q", "answer": "no marker"}))
    with pytest.raises(DataError, match=r"test.jsonl:2: .*####"):
        load_split("gsm8k", "test", tmp_path)


def test_bad_arc_answer_key_and_gz(tmp_path):
    d = tmp_path / "arc" / "ARC-Easy"
    d.mkdir(parents=True)
    rec = {"id": "x", "question": {"stem": "q", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]},
           "answerKey": "C"}
    (d / "ARC-Easy-Test.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(DataError, match=r"answerKey 'C' is not one of the item's labels"):
        load_split("arc_easy", "test", tmp_path)
    (tmp_path / "humaneval").mkdir()
    (tmp_path / "humaneval" / "HumanEval.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot be read as gzip"):
        load_split("humaneval", "test", tmp_path)
    with gzip.open(tmp_path / "humaneval" / "HumanEval.jsonl.gz", "wt") as f:
        f.write(json.dumps({"task_id": "HumanEval/0", "prompt": "def f():\n"}) + "\n")
    with pytest.raises(DataError, match=r"HumanEval.jsonl.gz:1: record lacks field"):
        load_split("humaneval", "test", tmp_path)


def test_unknown_task_and_split():
    with pytest.raises(UnknownNameError, match="unknown task 'gsm9k'"):
        get_task("gsm9k")
    with pytest.raises(DataError, match="has no split 'dev'"):
        get_task("arc_easy").load("dev", None)


def test_hub_fallback_without_datasets_is_explained(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # make `import datasets` fail
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(DataError, match=r"pip install 't2\[hub\]'"):
        get_task("gsm8k").load("test", None)


def test_hub_fallback_reads_hub_layout(monkeypatch):
    """With no data dir, rows come from `datasets.load_dataset` (faked here: no network)."""
    import sys
    import types

    calls = []

    def load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        return [{"id": "Mercury_1", "question": "Which is a planet?", "answerKey": "2",
                 "choices": {"text": ["Moon", "Mars", "Sun"], "label": ["1", "2", "3"]}}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    ds = get_task("arc_challenge").load("valid", None)
    assert calls == [("allenai/ai2_arc", "ARC-Challenge", "validation")]
    s = ds.samples[0]
    assert (s.labels, s.choices, s.answer, s.answer_text) == (("1", "2", "3"), ("Moon", "Mars", "Sun"), "2", "Mars")
    assert list(ds.files) == ["hub:allenai/ai2_arc/ARC-Challenge/validation"] and len(ds.files[list(ds.files)[0]]) == 64


def test_arc_cloze_candidates_score_and_reference(data_dir):
    """The cloze task: one candidate per option, only the keyed one scores; LoRA-NTP trains on it."""
    t = get_task("arc_easy_cloze")
    assert t.output_type == "choice" and t.benchmark == "arc_easy"
    ds = load_split("arc_easy_cloze", "train", data_dir)
    assert len(ds) == len(load_split("arc_easy", "train", data_dir))
    for s in ds.samples[:200]:
        cands = t.candidates(s)
        assert len(cands) == len(s.choices) and t.messages(s)[0]["content"] == f"Question: {s.question}"
        verdicts = [t.score(s, c).correct for c in cands]
        assert verdicts.count(True) == 1 and verdicts.index(True) == t.gold_candidate(s)
        assert t.reference_completion(s) == cands[t.gold_candidate(s)] == f"Answer: {s.answer_text}"
    junk = t.score(ds.samples[0], "B")
    assert junk.parsed is None and not junk.correct and "none of the candidates" in junk.detail
    with pytest.raises(TypeError, match="generates its answers"):
        get_task("arc_easy").candidates(ds.samples[0])


def _reference_scores(task_name: str, split: str, data_dir, ids=None, limits=None):
    from t2core.sandbox import run_many

    task = get_task(task_name)
    samples = [s for s in load_split(task_name, split, data_dir).samples if ids is None or s.id in ids]
    jobs = [(task.program(s, f"```python\n{s.solution}\n```"), task.test_spec(s)) for s in samples]
    return {s.id: r for s, r in zip(samples, run_many(jobs, limits or task.limits), strict=True)}


def test_tricky_references_cross_the_sandbox(data_dir):
    # Counter return values (40, 88), a function named like a builtin (126), a type as an argument (533),
    # HumanEval tests that use the prompt's own helpers (32 poly, 38 encode_cyclic, 50 encode_shift)
    mbpp = _reference_scores("mbpp", "test", data_dir, {"mbpp/40", "mbpp/88", "mbpp/126", "mbpp/367"})
    mbpp |= _reference_scores("mbpp", "valid", data_dir, {"mbpp/533"})
    mbpp |= _reference_scores("mbpp", "train", data_dir, {"mbpp/601", "mbpp/927", "mbpp/602"})
    from t2core.tasks.code import UNJUDGEABLE

    assert {i for i, r in mbpp.items() if not r.passed} == set(UNJUDGEABLE), mbpp
    he = _reference_scores("humaneval", "test", data_dir, {"HumanEval/32", "HumanEval/38", "HumanEval/50"})
    assert all(r.passed for r in he.values()) and len(he) == 3, he


def test_training_data_leaves_out_unjudgeable_items(data_dir, tiny):
    from t2core.training.config import RLConfig
    from t2core.training.reinforce import plan_training

    train, _, _ = plan_training(tiny.weights_hash, RLConfig(task="mbpp"), data_dir)
    ids = {s.id for s in train.samples}
    assert "mbpp/601" not in ids and "mbpp/927" not in ids and "mbpp/602" in ids
    assert len(ids) == 374 - 2


@pytest.mark.slow
def test_every_reference_solution_passes_unless_listed(data_dir):
    """All 974 MBPP and 164 HumanEval reference solutions through the sandbox (docs/sandbox.md)."""
    from t2core.sandbox import SandboxLimits
    from t2core.tasks.code import UNJUDGEABLE

    roomy = SandboxLimits(timeout_s=60, cpu_s=60)  # mbpp/123 needs ~6 s of CPU; CI machines are busy
    failed = {}
    for task, split in [("mbpp", sp) for sp in ("prompt", "test", "valid", "train")] + [("humaneval", "test")]:
        failed |= {i: r for i, r in _reference_scores(task, split, data_dir, limits=roomy).items() if not r.passed}
    assert set(failed) == set(UNJUDGEABLE), failed


def test_a_dataset_file_that_differs_from_its_pinned_hash_is_refused(tmp_path, data_dir):
    src = (data_dir / "gsm8k" / "test.jsonl").read_text()
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text(src.replace("#### 18", "#### 19", 1))  # still well-formed
    with pytest.raises(DataError, match=r"test.jsonl has sha256 .* not the pinned 3730d312f6e34405.*Restore"):
        load_split("gsm8k", "test", tmp_path)


@pytest.mark.parametrize("task", ["gsm8k", "mbpp", "arc_easy", "arc_easy_cloze"])
def test_equal_size_splits_halve_train_and_valid(task, data_dir):
    """Paper A.1: each training task's data in equal-size training and validation halves."""
    from t2core.tasks import load_split

    a, b = (load_split(task, s, data_dir) for s in ("train_eq", "valid_eq"))
    pooled = {s.id for s in load_split(task, "train", data_dir).samples} | {
        s.id for s in load_split(task, "valid", data_dir).samples}
    ids_a, ids_b = {s.id for s in a.samples}, {s.id for s in b.samples}
    assert abs(len(ids_a) - len(ids_b)) <= 1 and not ids_a & ids_b and ids_a | ids_b == pooled


def test_the_ntp_split_is_part_of_the_adapter_id_unless_it_is_train(data_dir):
    from t2core.training.ntp import NTPConfig, plan_ntp

    ids = [plan_ntp("w", NTPConfig("mbpp", split=s), data_dir)[1] for s in ("train", "train_eq")]
    assert ids[0] != ids[1]
    assert plan_ntp("w", NTPConfig("mbpp"), data_dir)[1] == ids[0]
