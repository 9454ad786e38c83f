"""The host-side expert swap with the model's weight file (issue 43): W' is written over W (one copy of each
targeted weight), W is read back from the file exactly, and nothing changes where the file cannot restore W."""

import os

import pytest
import torch
from safetensors.torch import save_file

from t2core.models.weight_file import WeightFile
from t2core.svd import ensure_svd, load_svd
from t2core.svf import SVFConfig, SVFPolicy, materialised, ranks_of
from t2core.svf.apply import materialised_scales, svf_weights


@pytest.fixture(scope="module")
def svd_mlp(tiny):
    return load_svd(ensure_svd(tiny, "mlp"))


@pytest.fixture
def origin(tiny, tmp_path):
    """The tiny model's weights as a safetensors directory, as a converted checkpoint holds them."""
    save_file({k: v.clone().contiguous() for k, v in tiny.model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    return tmp_path


def _expert(svd, seed=0):
    pol = SVFPolicy(ranks_of(svd), SVFConfig(targets="mlp"))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in pol.params.values():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return pol


def _state(model, names):
    return {n: (model.get_submodule(n).weight.data_ptr(), model.get_submodule(n).weight.data.clone()) for n in names}


def test_the_swap_writes_w_prime_over_w_and_reads_w_back_exactly(tiny, svd_mlp, origin):
    pol = _expert(svd_mlp)
    before = _state(tiny.model, pol.names)
    with materialised(tiny.model, svd_mlp, pol) as m:
        aside = {n: m.get_submodule(n).weight.data.clone() for n in pol.names}  # W' the pointer-swap way
    with materialised(tiny.model, svd_mlp, pol, origin=origin) as m:
        for n in pol.names:
            w = m.get_submodule(n).weight
            assert w.data_ptr() == before[n][0]  # written in place: no second tensor of the weight's size
            assert torch.equal(w.data, aside[n])  # the same W' as with the original set aside
    for n, (ptr, w0) in before.items():
        w = tiny.model.get_submodule(n).weight
        assert w.data_ptr() == ptr and torch.equal(w.data, w0)  # W itself, bit for bit


def test_a_weight_the_file_does_not_hold_as_it_is_now_is_set_aside_instead(tiny, svd_mlp, origin):
    pol = _expert(svd_mlp)
    name = pol.names[0]
    w = tiny.model.get_submodule(name).weight
    w0 = w.data.clone()
    other = pol.names[1], tiny.model.get_submodule(pol.names[1]).weight.data_ptr()
    with torch.no_grad():
        w.data.mul_(1.5)  # the model no longer matches its file here (e.g. a swap around this one)
    try:
        changed, ptr = w.data.clone(), w.data_ptr()
        with materialised(tiny.model, svd_mlp, pol, origin=origin):
            assert w.data_ptr() != ptr  # set aside (W' in a new tensor), not overwritten
            assert tiny.model.get_submodule(other[0]).weight.data_ptr() == other[1]  # the others: in place
        assert w.data_ptr() == ptr and torch.equal(w.data, changed)  # back as it was, not as the file
    finally:
        with torch.no_grad():
            w.data.copy_(w0)


def test_an_error_inside_the_block_leaves_the_model_as_it_was(tiny, svd_mlp, origin):
    pol = _expert(svd_mlp)
    before = _state(tiny.model, pol.names)
    with pytest.raises(RuntimeError, match="boom"), materialised(tiny.model, svd_mlp, pol, origin=origin):
        raise RuntimeError("boom")
    assert all(torch.equal(tiny.model.get_submodule(n).weight.data, w0) for n, (_, w0) in before.items())


def test_the_file_replaced_during_the_block_still_restores_what_was_loaded(tiny, svd_mlp, origin):
    """A re-conversion writes a new file and renames it over the old: the swap reads from the file it opened."""
    pol = _expert(svd_mlp)
    before = _state(tiny.model, pol.names)
    with materialised(tiny.model, svd_mlp, pol, origin=origin):
        new = origin / "new.tmp"
        save_file({k: torch.zeros_like(v) for k, v in tiny.model.state_dict().items()}, str(new))
        os.replace(new, origin / "model.safetensors")
    assert all(torch.equal(tiny.model.get_submodule(n).weight.data, w0) for n, (_, w0) in before.items())


def test_vectors_received_from_another_process_swap_in_place_too(tiny, svd_mlp, origin):
    pol = _expert(svd_mlp, seed=3)
    before = _state(tiny.model, pol.names)
    with materialised(tiny.model, svd_mlp, pol) as m:
        want = {n: m.get_submodule(n).weight.data.clone() for n in pol.names}
    with materialised_scales(tiny.model, svd_mlp, svf_weights(pol, svd_mlp, tiny.weights_hash), origin=origin) as m:
        assert all(m.get_submodule(n).weight.data_ptr() == before[n][0] for n in pol.names)
        assert all(torch.equal(m.get_submodule(n).weight.data, want[n]) for n in pol.names)
    assert all(torch.equal(tiny.model.get_submodule(n).weight.data, w0) for n, (_, w0) in before.items())


def test_the_weight_file_reads_each_tensor_as_stored(tiny, origin):
    with WeightFile(origin) as f:
        for k, v in tiny.model.state_dict().items():
            assert k in f and torch.equal(f.read(k), v)
        assert "no.such.weight" not in f


def test_a_weight_file_cut_short_during_the_swap_is_one_clear_error(tiny, svd_mlp, origin):
    """A file changed in place (not replaced) cannot give W back: the others are restored, the error names the rest."""
    from t2core.errors import ArtifactError

    pol = _expert(svd_mlp)
    before = _state(tiny.model, pol.names)
    try:
        with pytest.raises(ArtifactError, match="could not be read back.*reload it"):
            with materialised(tiny.model, svd_mlp, pol, origin=origin):
                os.truncate(origin / "model.safetensors", 1000)  # the open file is the same inode: its data is gone
    finally:
        with torch.no_grad():
            for n, (_, w0) in before.items():
                tiny.model.get_submodule(n).weight.data.copy_(w0)  # the shared fixture as it was
