"""courselib.data: every source gives the same verified tensors; loaders are balanced and seeded."""
import gzip
import http.server
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from courselib import data as D

FULL_SHAPES = {"train": (60000, 28, 28), "test": (10000, 28, 28)}


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_read_idx_roundtrip_and_errors():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(D.read_idx(idx_bytes(a)), a)
    with pytest.raises(ValueError, match="magic"):
        D.read_idx(b"\x00\x00\x09\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="holds"):
        D.read_idx(idx_bytes(a)[:-1])


def test_subset_is_balanced_verified_and_fast():
    ds = D.load_fashion_mnist(source="subset")
    assert ds.source == "subset"
    assert ds.train_images.shape == (10000, 28, 28) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (2000, 28, 28)
    assert ds.train_labels.dtype == torch.int64
    assert torch.bincount(ds.train_labels).tolist() == [1000] * 10
    assert torch.bincount(ds.test_labels).tolist() == [200] * 10
    assert len(ds.classes) == 10 and ds.classes[9] == "Ankle boot"


def test_subset_checksum_detects_tampering(monkeypatch, tmp_path):
    src = Path(D.__file__).parent / "datasets"
    bad = tmp_path / "courselib_fake"
    (bad / "datasets").mkdir(parents=True)
    with np.load(src / D.SUBSET_FILE) as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    arrays["train_images"][0, 0, 0] ^= 1
    np.savez_compressed(bad / "datasets" / D.SUBSET_FILE, **arrays)
    (bad / "datasets" / D.SUBSET_MANIFEST).write_text((src / D.SUBSET_MANIFEST).read_text())
    monkeypatch.setattr(D.resources, "files", lambda _pkg: bad)
    with pytest.raises(D.ChecksumError, match="manifest"):
        D.load_fashion_mnist(source="subset")


@pytest.fixture
def fake_full(tmp_path):
    """A folder laid out like the real data set (small), with checksums patched to match it."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (50, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(50) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(20) % 10,
    }
    digests = {}
    for stem, arr in arrays.items():
        raw = idx_bytes(arr)
        digests[stem] = D._sha256(raw)
        (tmp_path / (stem + ".gz")).write_bytes(gzip.compress(raw))
    return tmp_path, arrays, digests


def test_explicit_path_and_env_var(fake_full, monkeypatch):
    folder, arrays, digests = fake_full
    monkeypatch.setattr(D, "FILES", digests)
    ds = D.load_fashion_mnist(folder)
    assert ds.source.startswith("path:")
    assert np.array_equal(ds.train_images.numpy(), arrays["train-images-idx3-ubyte"])
    assert ds.test_labels.tolist() == list(arrays["t10k-labels-idx1-ubyte"])
    monkeypatch.setenv(D.ENV_VAR, str(folder))
    assert D.load_fashion_mnist().source.startswith("path:")
    # uncompressed files work too
    for stem in digests:
        gz = folder / (stem + ".gz")
        (folder / stem).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert torch.equal(D.load_fashion_mnist(folder).train_images, ds.train_images)


def test_corrupt_copy_is_refused_with_advice(fake_full, monkeypatch):
    folder, _, digests = fake_full
    monkeypatch.setattr(D, "FILES", {**digests, "t10k-labels-idx1-ubyte": "0" * 64})
    with pytest.raises(D.ChecksumError, match="checksum mismatch"):
        D.load_fashion_mnist(folder)


def test_missing_path_error_names_the_options(tmp_path, monkeypatch):
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(D.DataNotFoundError, match="COURSELIB_FASHION_MNIST"):
        D.load_fashion_mnist()


def test_nothing_available_error(monkeypatch, tmp_path):
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    monkeypatch.setattr(D, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(D, "_load_subset", lambda: (_ for _ in ()).throw(FileNotFoundError()))
    with pytest.raises(D.DataNotFoundError) as e:
        D.load_fashion_mnist()
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "download=True" in msg and D.ENV_VAR in msg


def test_download_path_against_a_local_server(fake_full, monkeypatch, tmp_path):
    folder, arrays, digests = fake_full
    monkeypatch.setattr(D, "FILES", digests)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        cache = tmp_path / "cache"
        ds = D.load_fashion_mnist(source="download", cache_dir=cache, base_url=url)
        assert ds.source == "download"
        assert np.array_equal(ds.train_images.numpy(), arrays["train-images-idx3-ubyte"])
        assert sorted(p.name for p in cache.iterdir()) == sorted(s + ".gz" for s in digests)
    finally:
        server.shutdown()


@pytest.mark.skipif(not D.DEBIAN_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_debian_copy_matches_and_contains_the_subset():
    full = D.load_fashion_mnist(source="debian")
    assert tuple(full.train_images.shape) == FULL_SHAPES["train"]
    assert tuple(full.test_images.shape) == FULL_SHAPES["test"]
    sub = D.load_fashion_mnist(source="subset")
    # every subset image is one of the full set's images with the same label
    flat = full.train_images.reshape(len(full.train_images), -1)
    lookup = {bytes(r.numpy()): int(label) for r, label in zip(flat, full.train_labels)}
    for img, lab in zip(sub.train_images[:200], sub.train_labels[:200]):
        assert lookup[bytes(img.reshape(-1).numpy())] == int(lab)


def test_make_loaders_splits_are_balanced_disjoint_and_seeded():
    ds = D.load_fashion_mnist(source="subset")
    L = D.make_loaders(ds, train_size=2000, val_size=500 - 500 % 10, test_size=300, batch_size=64, seed=3)
    xs, ys = zip(*L.train)
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.shape == (2000, 1, 28, 28) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [200] * 10
    assert torch.bincount(torch.cat([b[1] for b in L.val])).tolist() == [50] * 10
    assert sum(len(b[1]) for b in L.test) == 300
    # standardized with the training statistics
    assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 1) < 0.02
    # train and validation images are disjoint
    val = torch.cat([b[0] for b in L.val]).reshape(-1, 784)
    tr = {bytes(r.numpy()) for r in x.reshape(-1, 784)}
    assert not any(bytes(r.numpy()) in tr for r in val)
    # seeded: identical batches on a second call, different with another seed
    L2 = D.make_loaders(ds, train_size=2000, val_size=500, test_size=300, batch_size=64, seed=3)
    assert torch.equal(next(iter(L2.train))[0], next(iter(D.make_loaders(
        ds, train_size=2000, val_size=500, test_size=300, batch_size=64, seed=3).train))[0])
    L3 = D.make_loaders(ds, train_size=2000, val_size=500, test_size=300, batch_size=64, seed=4)
    assert not torch.equal(next(iter(L2.train))[1], next(iter(L3.train))[1])


def test_make_loaders_rejects_unbalanced_sizes():
    with pytest.raises(ValueError, match="multiples of 10"):
        D.make_loaders(train_size=1005)
    with pytest.raises(ValueError, match="only"):
        D.make_loaders(train_size=20000)


def test_augmentations_shapes_and_semantics():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.float32).reshape(2, 1, 4, 5)
    assert torch.equal(D.RandomHorizontalFlip(p=1.0)(x, g), x.flip(-1))
    assert torch.equal(D.RandomHorizontalFlip(p=0.0)(x, g), x)
    # a crop with zero padding is the identity; with padding every output is a shifted window
    assert torch.equal(D.RandomCrop(padding=0)(x, g), x)
    y = D.RandomTranslate(max_shift=1)(x, g)
    assert y.shape == x.shape
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(2):
        assert any(torch.equal(y[i], padded[i, :, dy:dy + 4, dx:dx + 5]) for dy in range(3) for dx in range(3))
    c = D.Compose(D.RandomHorizontalFlip(1.0), D.RandomCrop(0))
    assert torch.equal(c(x, g), x.flip(-1))


def test_normalize_per_channel():
    x = torch.ones(2, 3, 2, 2) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    out = D.normalize(x, [1.0, 2.0, 3.0], [1.0, 2.0, 0.5])
    assert torch.equal(out, torch.zeros_like(x))
