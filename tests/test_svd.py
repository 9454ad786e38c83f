"""SVD store: exact reconstruction, reuse without recompute, verification, atomicity."""

import json

import pytest
import torch

import t2core.svd as svd_mod
from t2core.artifacts import ArtifactStore
from t2core.errors import ArtifactError, ConfigError
from t2core.models.targets import find_targets
from t2core.svd import KIND, ensure_svd, load_svd, svd_matrix


def test_svd_matrix_shapes_and_reconstruction():
    w = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    u, s, v = svd_matrix(w)
    assert u.shape == (12, 5) and s.shape == (5,) and v.shape == (5, 5)
    assert torch.allclose(u @ torch.diag(s) @ v.T, w, atol=1e-5)
    assert torch.all(s[:-1] >= s[1:])  # singular values sorted descending


@pytest.mark.parametrize("targets,n", [("mlp", 6), ("attn", 8), ("both", 14)])
def test_decompose_targets(tiny, targets, n):
    info = ensure_svd(tiny, targets)
    assert info.n_matrices == n and not info.reused
    assert info.max_error < 1e-4
    mats = load_svd(info)
    mods = find_targets(tiny.model, tiny.family, targets)
    assert set(mats) == set(mods)
    for name, (u, s, v) in mats.items():
        assert torch.allclose(u @ torch.diag(s) @ v.T, mods[name].weight, atol=1e-4)


def test_second_call_reuses_without_computing(tiny, monkeypatch):
    first = ensure_svd(tiny, "mlp")

    def boom(*a, **k):
        raise AssertionError("SVD recomputed")

    monkeypatch.setattr(svd_mod, "svd_matrix", boom)
    second = ensure_svd(tiny, "mlp")
    assert second.reused and second.key == first.key and second.seconds == 0.0
    assert second.max_errors == first.max_errors


def test_key_depends_on_weights_and_targets():
    from t2core.models import load_model

    a = ensure_svd(load_model("tiny-random", seed=0), "mlp")
    b = ensure_svd(load_model("tiny-random", seed=1), "mlp")
    c = ensure_svd(load_model("tiny-random", seed=0), "attn")
    assert len({a.key, b.key, c.key}) == 3


def test_corrupted_file_is_a_clear_error(tiny):
    info = ensure_svd(tiny, "mlp")
    data = bytearray(info.path.read_bytes())
    data[-10] ^= 0xFF  # flip bits inside a tensor
    info.path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"svd\.safetensors is corrupted .*delete .* and rerun"):
        ensure_svd(tiny, "mlp")
    with pytest.raises(ArtifactError, match="corrupted"):
        load_svd(info)
    rebuilt = ensure_svd(tiny, "mlp", rebuild=True)
    assert not rebuilt.reused and load_svd(rebuilt)


def test_interrupted_write_leaves_no_artifact(tiny, monkeypatch):
    store = ArtifactStore()

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(svd_mod, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_svd(tiny, "mlp", store=store)
    assert not any(p.is_dir() and not p.name.startswith(".") for p in (store.root / KIND).iterdir())
    assert not list((store.root / KIND).glob(".*"))  # temp dir cleaned up
    monkeypatch.undo()
    assert not ensure_svd(tiny, "mlp", store=store).reused


def test_manifest_garbage_is_a_clear_error(tiny):
    info = ensure_svd(tiny, "mlp")
    (info.path.parent / "manifest.json").write_text("{oops")
    with pytest.raises(ArtifactError, match="manifest .* is corrupted"):
        ensure_svd(tiny, "mlp")


def test_bad_target_spec():
    from t2core.models.targets import check_target_spec

    with pytest.raises(ConfigError, match="'ffn' is not one of mlp, attn, both"):
        check_target_spec("ffn")


def test_manifest_records_provenance(tiny):
    info = ensure_svd(tiny, "mlp")
    man = json.loads((info.path.parent / "manifest.json").read_text())
    assert man["meta"]["weights_hash"] == tiny.weights_hash and man["meta"]["targets"] == "mlp"
    assert man["files"]["svd.safetensors"]["bytes"] == info.path.stat().st_size
