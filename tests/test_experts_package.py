"""Expert packages (issue 37, docs/experts.md): `t2 experts export ID DIR` in one T2_HOME and
`t2 experts import DIR` in another give the same expert, evaluated identically item by item; a package that
is corrupted, edited, incomplete or for another model is refused in one line, and nothing is imported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from tests.conftest import catalog_rows, t2_inproc


def _trained_here(tiny, seed: int = 11):
    """An SVF expert of the tiny model in this T2_HOME's store, with the catalog rows a training run writes."""
    from dataclasses import asdict

    from catalog import Catalog
    from catalog.records import write_records
    from t2core.artifacts import ArtifactStore
    from t2core.experts import store_expert
    from t2core.svd import ensure_svd, load_svd
    from t2core.svf import ExpertHeader, SVFConfig, SVFPolicy, ranks_of
    from t2core.variants import VariantRef
    from t2ops.records import RunRow, TrainingRecord

    ranks = ranks_of(load_svd(ensure_svd(tiny, "mlp")))
    p = SVFPolicy(ranks)
    g = torch.Generator().manual_seed(seed)
    p.load_raw_state({n: 1 + 0.3 * torch.randn(v.shape, generator=g) for n, v in p.raw_state().items()})
    header = ExpertHeader(base_weights_hash=tiny.weights_hash, model="tiny-random", task="arc_easy_cloze",
                          svf=asdict(SVFConfig()), ranks=ranks, config={"steps": 3, "lr": 0.01},
                          metrics={"base_valid": 0.25, "best_valid": 0.5}, origin="svf-pg")
    run_id = f"train-{seed}"
    ref = store_expert(ArtifactStore(), run_id, p, header, meta={"record": {"seconds": 1.5}})
    metrics = {"base_valid": 0.25, "best_valid": 0.5, "best_step": 2.0, "steps": 3.0}
    row = RunRow(run_id=run_id, kind="train", model="tiny-random", weights_hash=tiny.weights_hash,
                 task="arc_easy_cloze", config={"steps": 3}, variant=VariantRef("svf", (ref.id,)))
    write_records(Catalog(), [TrainingRecord(row, ref.id, str(ref.path), "mlp", "svf-pg", metrics)])
    return ref


def _one_line_error(res, *needles: str) -> None:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and res.stderr.startswith("error:"), res.stderr
    for n in needles:
        assert n in " ".join(res.stderr.split()), res.stderr


_SAMPLES = "SELECT idx, sample_id, output, parsed, correct FROM samples WHERE run_id = '{}' ORDER BY idx"


def _eval(home: Path, expert: str) -> tuple[str, list, float]:
    res = t2_inproc("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "3", "--expert", expert)
    assert res.returncode == 0, res.stderr
    ((run_id, acc),) = catalog_rows(home, "SELECT r.run_id, m.value FROM runs r JOIN metrics m ON m.run_id = r.run_id"
                                          " AND m.name = 'accuracy' WHERE r.kind = 'eval'")
    return run_id, catalog_rows(home, _SAMPLES.format(run_id)), acc


def test_a_package_round_trips_between_two_homes_with_identical_evaluations(tiny, data_dir, tmp_path, t2_home,
                                                                           monkeypatch):
    ref = _trained_here(tiny)
    pkg = tmp_path / "pkg"
    out = t2_inproc("experts", "export", ref.id, str(pkg))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in pkg.iterdir()) == ["expert.safetensors", "t2-package.json"]
    assert (pkg / "expert.safetensors").read_bytes() == ref.path.read_bytes()  # the file as stored
    man = json.loads((pkg / "t2-package.json").read_text())
    assert (man["expert_id"], man["model"], man["targets"], man["origin"], man["kind"]) == (
        ref.id, {"alias": "tiny-random", "weights_hash": tiny.weights_hash}, "mlp", "svf-pg", "svf")
    rec = man["record"]
    assert rec["header"]["config"] == {"steps": 3, "lr": 0.01} and rec["store"]["record"] == {"seconds": 1.5}
    assert rec["catalog"]["expert"]["run_id"] == "train-11" and rec["catalog"]["expert"]["metrics"]["steps"] == 3.0
    again = tmp_path / "again"
    assert t2_inproc("experts", "export", ref.id[:12], str(again)).returncode == 0
    assert (again / "t2-package.json").read_bytes() == (pkg / "t2-package.json").read_bytes()  # content, not time
    run_a, samples_a, acc_a = _eval(t2_home, ref.id)

    home_b = tmp_path / "home-b"
    monkeypatch.setenv("T2_HOME", str(home_b))
    before = t2_inproc("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "3", "--expert", ref.id)
    _one_line_error(before, "matches 0 stored experts")  # not there before the import
    imp = t2_inproc("experts", "import", str(pkg))
    assert imp.returncode == 0, imp.stderr
    assert f"{ref.id} (arc_easy_cloze expert of tiny-random) imported" in " ".join(imp.stdout.split())
    stored = home_b / "artifacts" / "experts" / ref.id.removeprefix("svf:") / "expert.safetensors"
    assert stored.read_bytes() == ref.path.read_bytes()
    ((eid, origin, run_id, metrics),) = catalog_rows(home_b, "SELECT expert_id, origin, run_id, metrics_json FROM experts")
    assert (eid, origin, run_id.startswith("import-")) == (ref.id, "svf-pg", True)
    assert json.loads(metrics)["best_step"] == 2.0  # as the exporting catalog listed it
    ((kind, cfg),) = catalog_rows(home_b, f"SELECT kind, config_json FROM runs WHERE run_id = '{run_id}'")
    assert kind == "import" and json.loads(cfg)["package"]["source_run_id"] == "train-11"
    runs = t2_inproc("catalog", "ls", "runs")
    assert runs.returncode == 0 and "imported svf:" in runs.stdout
    listed = t2_inproc("catalog", "ls", "experts")
    assert listed.returncode == 0 and "svf-pg" in listed.stdout and " ok" in listed.stdout
    run_b, samples_b, acc_b = _eval(home_b, ref.id)
    assert (run_b, samples_b, acc_b) == (run_a, samples_a, acc_a) and len(samples_b) == 3
    reimp = t2_inproc("experts", "import", str(pkg))
    assert reimp.returncode == 0 and "was imported before" in " ".join(reimp.stdout.split())
    assert catalog_rows(home_b, "SELECT count(*) FROM runs WHERE kind = 'import'") == [(1,)]

    peft = t2_inproc("experts", "export", ref.id, str(tmp_path / "lora"), "--format", "peft", "--rank", "auto",
                     "--tol", "0.3")  # home B has no decomposition: the model is loaded and decomposed
    assert peft.returncode == 0, peft.stderr
    lora = json.loads((tmp_path / "lora" / "t2-package.json").read_text())
    assert lora["kind"] == "peft-lora" and lora["lora"]["error"] <= 0.3 and len(lora["lora"]["errors"]) == 6
    assert f"rank {lora['lora']['rank']} (auto at --tol 0.3)" in " ".join(peft.stdout.split())
    _one_line_error(t2_inproc("experts", "import", str(tmp_path / "lora")), "is a LoRA export (PEFT adapter)")


def test_importing_into_the_home_it_came_from_keeps_one_file_and_the_training_row(tiny, tmp_path, t2_home):
    ref = _trained_here(tiny, seed=12)
    assert t2_inproc("experts", "export", ref.id, str(tmp_path / "p")).returncode == 0
    imp = t2_inproc("experts", "import", str(tmp_path / "p"))
    assert imp.returncode == 0, imp.stderr
    files = list((t2_home / "artifacts" / "experts").glob("*/expert.safetensors"))
    assert files == [ref.path]  # the store's one file for this content id; the import points to it
    assert catalog_rows(t2_home, "SELECT run_id FROM experts") == [("train-12",)]
    assert catalog_rows(t2_home, "SELECT count(*) FROM runs WHERE kind = 'import'") == [(1,)]


def test_packages_that_are_not_whole_or_not_this_models_are_refused_in_one_line(tiny, tmp_path, t2_home,
                                                                                 monkeypatch):
    ref = _trained_here(tiny, seed=13)
    pkg = tmp_path / "pkg"
    assert t2_inproc("experts", "export", ref.id, str(pkg)).returncode == 0
    _one_line_error(t2_inproc("experts", "export", ref.id, str(pkg)), "exists and is not an empty directory")
    _one_line_error(t2_inproc("experts", "export", "svf:00000000", str(tmp_path / "nope")), "matches 0 stored experts")
    assert not (tmp_path / "nope").exists()
    _one_line_error(t2_inproc("experts", "export", ref.id, str(tmp_path / "f"), "--format", "onnx"),
                    "--format 'onnx' is not one of svf, peft")
    _one_line_error(t2_inproc("experts", "export", ref.id, str(tmp_path / "f"), "--rank", "8"),
                    "applies to --format peft")
    _one_line_error(t2_inproc("experts", "export", ref.id, str(tmp_path / "f"), "--format", "peft", "--rank", "x"),
                    "whole number >= 1")
    _one_line_error(t2_inproc("experts", "export", ref.id, str(tmp_path / "f"), "--format", "peft", "--tol", "2"),
                    "--tol 2.0")

    monkeypatch.setenv("T2_HOME", str(tmp_path / "home-b"))

    def broken(name: str, edit) -> Path:
        p = tmp_path / name
        shutil.copytree(pkg, p)
        edit(p)
        return p

    def flip(p: Path) -> None:
        data = bytearray((p / "expert.safetensors").read_bytes())
        data[-3] ^= 0x01
        (p / "expert.safetensors").write_bytes(bytes(data))

    def other_model(p: Path) -> None:
        man = json.loads((p / "t2-package.json").read_text())
        man["model"]["weights_hash"] = "0" * 64
        (p / "t2-package.json").write_text(json.dumps(man))

    cases = [
        (broken("corrupt", flip), "file expert.safetensors is corrupted (sha256"),
        (broken("no-manifest", lambda p: (p / "t2-package.json").unlink()), "has no t2-package.json"),
        (broken("no-file", lambda p: (p / "expert.safetensors").unlink()), "file expert.safetensors is missing"),
        (broken("edited", other_model), "its manifest says model '0000"),
        (tmp_path / "absent", "is not a directory"),
    ]
    for path, needle in cases:
        _one_line_error(t2_inproc("experts", "import", str(path)), needle)
    _one_line_error(t2_inproc("experts", "import", str(pkg), "--model", "tiny-random-deep"),
                    "an expert of tiny-random", "not of tiny-random-deep as loaded here")
    assert not (tmp_path / "home-b" / "artifacts" / "experts").exists()

    from catalog import Catalog
    from catalog.records import write_records
    from t2ops.records import ModelRecord

    write_records(Catalog(), [ModelRecord("f" * 64, "tiny-random", "random:seed=9", 1)])  # this home's tiny-random
    _one_line_error(t2_inproc("experts", "import", str(pkg)), "not of tiny-random as this catalog knows it (weights "
                                                               "ffffffffffff")
    assert catalog_rows(tmp_path / "home-b", "SELECT count(*) FROM experts") == [(0,)]
    assert catalog_rows(tmp_path / "home-b", "SELECT count(*) FROM runs") == [(0,)]
