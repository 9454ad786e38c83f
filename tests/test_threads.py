"""The threads rule (issue 19): processes that run at once never ask for more threads than there are cores."""

from __future__ import annotations

import os

import pytest
import torch

from t2core import threads


@pytest.fixture
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # configure() sets them for children: restored after
        monkeypatch.setenv(var, os.environ.get(var, str(before)))
    yield
    threads._HELPERS.clear()
    torch.set_num_threads(before)


def test_split_gives_everyone_at_least_one_and_never_more_than_the_total():
    assert threads.split(2, 2) == [1, 1]
    assert threads.split(16, 3) == [6, 5, 5]
    assert threads.split(1, 2) == [1, 1]  # one core: each still needs a thread
    for total in range(1, 33):
        for parties in range(1, 5):
            shares = threads.split(total, parties)
            assert len(shares) == parties and min(shares) >= 1
            assert sum(shares) <= max(total, parties)


def test_budget_is_t2_threads_or_the_cores(monkeypatch):
    monkeypatch.delenv("T2_THREADS", raising=False)
    assert threads.budget() == len(threads.cores()) >= 1
    monkeypatch.setenv("T2_THREADS", "3")
    assert threads.budget() == 3
    from t2core.errors import ConfigError

    for bad in ("0", "many", "-2"):
        monkeypatch.setenv("T2_THREADS", bad)
        with pytest.raises(ConfigError, match="T2_THREADS"):
            threads.budget()


def test_a_helper_takes_its_share_and_gives_it_back(monkeypatch, restore_threads):
    monkeypatch.setenv("T2_THREADS", "4")
    assert threads.configure() == 4 and torch.get_num_threads() == 4
    share = threads.claim("server")
    assert share == 2 and threads.own() == 2 and torch.get_num_threads() == 2  # 2 + 2 == the budget
    env = threads.child_env(share)
    assert env["T2_THREADS"] == env["OMP_NUM_THREADS"] == "2"
    assert len(env["VLLM_CPU_OMP_THREADS_BIND"].split(",")) == min(2, len(threads.cores()))
    threads.release("server")
    assert threads.own() == 4 and torch.get_num_threads() == 4


def test_a_helper_that_answers_calls_takes_the_cores_in_turns(monkeypatch, restore_threads):
    monkeypatch.setenv("T2_THREADS", "4")
    threads.configure()
    assert threads.claim("server", turns=True) == 4 and threads.own() == 4 and torch.get_num_threads() == 4
    assert threads.claim("other") == 2 and threads.own() == 2  # a concurrent helper still takes its share
    threads.release("other")
    threads.release("server")
    assert threads.own() == 4


def test_every_run_row_records_its_threads(t2_home, data_dir, tiny):
    from catalog import Catalog
    from catalog.execute import execute
    from t2core.evaluate import EvalConfig
    from t2core.sampling import GenerationConfig
    from t2ops import evaluation
    from tests.conftest import catalog_rows

    req = evaluation.EvalRequest(EvalConfig("arc_easy", limit=2, generation=GenerationConfig(max_new_tokens=2)),
                                 None, "hf", str(data_dir))
    execute(evaluation.OP, req, tiny, Catalog())
    assert catalog_rows(t2_home, "SELECT threads FROM runs") == [(torch.get_num_threads(),)]
