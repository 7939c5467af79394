import hashlib

import pytest

from engine.core.errors import DataError
from engine.core.fetch import RemoteFile, resolve


def remote_for(tmp_path, content=b"hello data"):
    source = tmp_path / "server" / "hello.txt"
    source.parent.mkdir()
    source.write_bytes(content)
    return RemoteFile("set/hello.txt", source.as_uri(), hashlib.sha256(content).hexdigest(), len(content))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DLLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DLLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("DLLAB_OFFLINE", raising=False)


def test_explicit_folder_comes_first(tmp_path, monkeypatch):
    file = remote_for(tmp_path)
    for folder in ("mine", "data"):
        (tmp_path / folder / "set").mkdir(parents=True)
        (tmp_path / folder / "set" / "hello.txt").write_bytes(b"hello data")
    monkeypatch.setenv("DLLAB_DATA_DIR", str(tmp_path / "data"))
    assert resolve(file, tmp_path / "mine") == tmp_path / "mine" / "set" / "hello.txt"
    assert resolve(file) == tmp_path / "data" / "set" / "hello.txt"


def test_download_lands_in_the_cache_with_progress(tmp_path):
    file = remote_for(tmp_path)
    seen = []
    path = resolve(file, progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "cache" / "set" / "hello.txt" and path.read_bytes() == b"hello data"
    assert seen[-1] == (10, 10)
    assert [p.name for p in path.parent.iterdir()] == ["hello.txt"]


def test_a_copy_with_the_wrong_checksum_is_not_used(tmp_path, monkeypatch):
    file = remote_for(tmp_path)
    (tmp_path / "data" / "set").mkdir(parents=True)
    (tmp_path / "data" / "set" / "hello.txt").write_bytes(b"HELLO DATA")  # same size, other bytes
    monkeypatch.setenv("DLLAB_DATA_DIR", str(tmp_path / "data"))
    assert resolve(file).parent == tmp_path / "cache" / "set"


def test_a_corrupt_download_is_discarded(tmp_path):
    file = remote_for(tmp_path)
    bad = RemoteFile(file.path, file.url, "0" * 64, file.size)
    with pytest.raises(DataError, match="wrong checksum"):
        resolve(bad)
    assert not (tmp_path / "cache" / "set" / "hello.txt").exists()


def test_offline_says_what_is_missing_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DLLAB_OFFLINE", "1")
    with pytest.raises(DataError) as error:
        resolve(remote_for(tmp_path))
    message = str(error.value)
    assert "set/hello.txt" in message and "DLLAB_DATA_DIR" in message and str(tmp_path / "cache") in message


def test_unreachable_server_is_a_data_error(tmp_path):
    file = RemoteFile("set/x.bin", "http://127.0.0.1:9/x.bin", "0" * 64, 3)
    with pytest.raises(DataError, match="Could not download set/x.bin"):
        resolve(file)
