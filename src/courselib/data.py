"""Fashion-MNIST, offline first: loading, splits, normalization, augmentation, loaders.

Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) is 70,000 greyscale 28x28 images of
clothing in 10 classes, (c) 2017 Zalando SE, MIT licence (see ``datasets/NOTICE``).

:func:`load_fashion_mnist` looks for the images in this order and returns the same
tensors whatever the source:

1. an explicit ``path`` argument, else the ``COURSELIB_FASHION_MNIST`` environment
   variable: a folder with the four IDX files (``.gz`` or uncompressed);
2. Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``);
3. the balanced subset shipped inside this package (10,000 train / 2,000 test);
4. only when ``download=True`` (e.g. on Colab): the original files from Zalando's
   server, cached under ``~/.cache/courselib``.

Every source is verified against SHA-256 checksums of its decompressed content.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "CLASS_NAMES",
    "ENV_VAR",
    "DEBIAN_DIR",
    "DataNotFoundError",
    "ChecksumError",
    "FashionMNIST",
    "load_fashion_mnist",
    "read_idx",
    "ImageDataset",
    "Loaders",
    "make_loaders",
    "normalize",
    "Compose",
    "RandomHorizontalFlip",
    "RandomCrop",
    "RandomTranslate",
]

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
ENV_VAR = "COURSELIB_FASHION_MNIST"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "courselib" / "fashion-mnist"

# SHA-256 of the *decompressed* IDX files, so a recompressed copy (Debian's) verifies too.
FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
SUBSET_FILE = "fashion_mnist_subset.npz"
SUBSET_MANIFEST = "fashion_mnist_subset.json"

Source = Literal["auto", "path", "debian", "subset", "download"]


class DataNotFoundError(FileNotFoundError):
    """No usable copy of the data set was found."""


class ChecksumError(ValueError):
    """A copy of the data set exists but its content is not what it should be."""


@dataclass(frozen=True)
class FashionMNIST:
    """The data set as uint8 image tensors and int64 labels.

    train_images: (N_train, 28, 28) uint8; train_labels: (N_train,) int64;
    test_images: (N_test, 28, 28) uint8; test_labels: (N_test,) int64.
    ``source`` says where it was loaded from.
    """

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    source: str

    classes: tuple[str, ...] = CLASS_NAMES

    def __repr__(self) -> str:
        return (f"FashionMNIST(train={len(self.train_labels)}, test={len(self.test_labels)}, "
                f"source={self.source!r})")


# --------------------------------------------------------------------------- loading
def read_idx(raw: bytes) -> np.ndarray:
    """Decode an IDX file (the MNIST format) from its decompressed bytes."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"IDX header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def _read_file(folder: Path, stem: str) -> bytes:
    for name, opener in ((stem + ".gz", gzip.open), (stem, open)):
        if (folder / name).is_file():
            with opener(folder / name, "rb") as fh:
                return fh.read()
    raise DataNotFoundError(f"{folder} has no {stem}(.gz)")


def _sha256(*arrays: bytes) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a)
    return h.hexdigest()


def _load_idx_folder(folder: Path, source: str) -> FashionMNIST:
    arrays = {}
    for stem, digest in FILES.items():
        raw = _read_file(folder, stem)
        if _sha256(raw) != digest:
            raise ChecksumError(
                f"{folder / stem}: content checksum mismatch (corrupt or not Fashion-MNIST). "
                "Delete it and load again, or point COURSELIB_FASHION_MNIST elsewhere.")
        arrays[stem] = read_idx(raw)
    return FashionMNIST(
        train_images=torch.from_numpy(arrays["train-images-idx3-ubyte"].copy()),
        train_labels=torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64)),
        test_images=torch.from_numpy(arrays["t10k-images-idx3-ubyte"].copy()),
        test_labels=torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)),
        source=source,
    )


def subset_checksum(train_images: np.ndarray, train_labels: np.ndarray,
                    test_images: np.ndarray, test_labels: np.ndarray) -> str:
    """SHA-256 over the subset's arrays (uint8 images, int64 labels, C order)."""
    return _sha256(*(np.ascontiguousarray(a).tobytes() for a in
                     (train_images, train_labels.astype(np.int64),
                      test_images, test_labels.astype(np.int64))))


def _load_subset() -> FashionMNIST:
    pkg = resources.files("courselib") / "datasets"
    manifest = json.loads((pkg / SUBSET_MANIFEST).read_text())
    with resources.as_file(pkg / SUBSET_FILE) as path, np.load(path) as npz:
        arrays = [npz[k] for k in ("train_images", "train_labels", "test_images", "test_labels")]
    if subset_checksum(*arrays) != manifest["sha256"]:
        raise ChecksumError(
            f"the shipped subset {SUBSET_FILE} does not match its manifest; "
            "reinstall courselib (pip install --force-reinstall courselib).")
    tr_x, tr_y, te_x, te_y = arrays
    return FashionMNIST(torch.from_numpy(tr_x), torch.from_numpy(tr_y.astype(np.int64)),
                        torch.from_numpy(te_x), torch.from_numpy(te_y.astype(np.int64)),
                        source="subset")


def _download(cache_dir: Path, base_url: str) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stem in FILES:
        target = cache_dir / (stem + ".gz")
        if not target.exists():
            tmp = target.with_suffix(".part")
            with urllib.request.urlopen(base_url + stem + ".gz", timeout=60) as r, open(tmp, "wb") as fh:
                fh.write(r.read())
            tmp.replace(target)
    return cache_dir


def load_fashion_mnist(path: str | os.PathLike | None = None, *, source: Source = "auto",
                       download: bool = False, cache_dir: str | os.PathLike | None = None,
                       base_url: str = DOWNLOAD_URL) -> FashionMNIST:
    """Load Fashion-MNIST from the first available source (see the module docstring).

    ``source`` forces one source ("path", "debian", "subset", "download"); "auto" tries
    them in order. ``download=True`` lets "auto" fall back to the network.
    Returns a :class:`FashionMNIST` whose images are (N, 28, 28) uint8 tensors.
    """
    tried: list[str] = []
    explicit = path if path is not None else os.environ.get(ENV_VAR) or None
    if source in ("auto", "path") and explicit is not None:
        folder = Path(explicit).expanduser()
        if not folder.is_dir():
            raise DataNotFoundError(
                f"Fashion-MNIST folder {folder} does not exist (from "
                f"{'the path argument' if path is not None else ENV_VAR}). Fix the path, "
                f"or unset {ENV_VAR} to use the Debian copy or the shipped subset.")
        return _load_idx_folder(folder, source=f"path:{folder}")
    if source == "path":
        raise DataNotFoundError(f"source='path' needs a path argument or {ENV_VAR}.")
    if source in ("auto", "debian"):
        if all((DEBIAN_DIR / (s + ".gz")).is_file() or (DEBIAN_DIR / s).is_file() for s in FILES):
            return _load_idx_folder(DEBIAN_DIR, source="debian")
        tried.append(f"Debian package at {DEBIAN_DIR}: not installed "
                     "(sudo apt-get install dataset-fashion-mnist)")
        if source == "debian":
            raise DataNotFoundError("; ".join(tried))
    if source in ("auto", "subset"):
        try:
            return _load_subset()
        except FileNotFoundError:
            tried.append("shipped subset: missing from this installation of courselib")
            if source == "subset":
                raise DataNotFoundError("; ".join(tried)) from None
    if source == "download" or download:
        folder = _download(Path(cache_dir) if cache_dir else CACHE_DIR, base_url)
        return _load_idx_folder(folder, source="download")
    raise DataNotFoundError(
        "No copy of Fashion-MNIST found. Tried: " + "; ".join(tried) +
        f". Options: pass path=... or set {ENV_VAR} to a folder with the four IDX files, "
        "install the Debian package, or call load_fashion_mnist(download=True) with internet.")


# ------------------------------------------------------------------ transforms (batched)
def normalize(x: Tensor, mean: float | Sequence[float], std: float | Sequence[float]) -> Tensor:
    """Per-channel standardization. x: (N, C, H, W) float -> (N, C, H, W)."""
    m = torch.as_tensor(mean, dtype=x.dtype).reshape(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype).reshape(1, -1, 1, 1)
    return (x - m) / s


BatchTransform = Callable[[Tensor, torch.Generator], Tensor]


class Compose:
    """Apply batch transforms in order. Each maps (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, *transforms: BatchTransform) -> None:
        self.transforms = transforms

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        for t in self.transforms:
            x = t(x, g)
        return x

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``. x: (N, C, H, W)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        flip = torch.rand(x.shape[0], generator=g) < self.p
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop:
    """Zero-pad by ``padding`` and crop back to (H, W) at a random offset per image."""

    def __init__(self, padding: int = 2) -> None:
        self.padding = padding

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        n, _, h, w = x.shape
        p = self.padding
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=g)
        rows = (dy.view(n, 1) + torch.arange(h).view(1, h))          # (N, H)
        cols = (dx.view(n, 1) + torch.arange(w).view(1, w))          # (N, W)
        idx_n = torch.arange(n).view(n, 1, 1)
        out = padded.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)]
        return out.permute(0, 3, 1, 2).contiguous()

    def __repr__(self) -> str:
        return f"RandomCrop(padding={self.padding})"


class RandomTranslate(RandomCrop):
    """Shift each image by up to ``max_shift`` pixels in x and y, filling with zeros."""

    def __init__(self, max_shift: int = 2) -> None:
        super().__init__(padding=max_shift)

    def __repr__(self) -> str:
        return f"RandomTranslate(max_shift={self.padding})"


# ---------------------------------------------------------------------- datasets/loaders
class ImageDataset(Dataset):
    """In-memory images served a whole batch at a time (fast on a CPU).

    images: (N, H, W) or (N, C, H, W) uint8 or float; labels: (N,) int64.
    Items are ``(x, y)`` with x: (C, H, W) float32 scaled to [0, 1], normalized with
    ``mean``/``std`` when given, and augmented by ``transform`` (a batch transform).
    """

    def __init__(self, images: Tensor, labels: Tensor, *, mean: float | Sequence[float] | None = None,
                 std: float | Sequence[float] | None = None, transform: BatchTransform | None = None,
                 seed: int = 0) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        x = images if images.ndim == 4 else images.unsqueeze(1)
        self.images = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        self.labels = labels.long()
        self.mean, self.std, self.transform = mean, std, transform
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.images[idx]
        if self.transform is not None:
            x = self.transform(x, self.generator)
        if self.mean is not None and self.std is not None:
            x = normalize(x, self.mean, self.std)
        return x, self.labels[idx]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x, y = self.__getitems__([i])
        return x[0], y[0]


def _keep_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return batch


@dataclass
class Loaders:
    """Train, validation and test DataLoaders plus the normalization they use."""

    train: DataLoader
    val: DataLoader
    test: DataLoader
    mean: float
    std: float
    classes: tuple[str, ...] = CLASS_NAMES

    def __iter__(self) -> Iterator[DataLoader]:
        return iter((self.train, self.val, self.test))


def _balanced_take(labels: Tensor, per_class: int, g: torch.Generator) -> Tensor:
    picks = []
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(picks)


def make_loaders(data: FashionMNIST | None = None, *, batch_size: int = 128, val_size: int = 1000,
                 train_size: int | None = None, test_size: int | None = None,
                 augment: BatchTransform | None = None, normalize_inputs: bool = True,
                 seed: int = 0) -> Loaders:
    """Split ``data`` into train/validation/test DataLoaders (x: (B, 1, 28, 28) float32).

    ``data`` defaults to the shipped subset (``load_fashion_mnist(source="subset")``), so
    every reader gets the same numbers on any machine; pass ``load_fashion_mnist()`` to
    use the full set when it is available.
    The validation set is ``val_size`` images held out of the training images, stratified
    by class; ``train_size``/``test_size`` take balanced subsets (fast CPU experiments).
    Mean and std come from the training split only. Shuffling and augmentation follow
    ``seed``, so two calls with the same arguments give identical batches.
    """
    data = data if data is not None else load_fashion_mnist(source="subset")
    g = torch.Generator().manual_seed(seed)
    n_classes = len(CLASS_NAMES)
    if val_size % n_classes or (train_size or 0) % n_classes or (test_size or 0) % n_classes:
        raise ValueError(f"train_size, val_size and test_size must be multiples of {n_classes} "
                         "(the splits are balanced by class)")
    perm = torch.randperm(len(data.train_labels), generator=g)
    labels = data.train_labels[perm]
    val_pos = _balanced_take(labels, val_size // n_classes, g)
    is_val = torch.zeros(len(perm), dtype=torch.bool)
    is_val[val_pos] = True
    val_idx, train_idx = perm[is_val], perm[~is_val]
    if train_size is not None:
        if train_size > len(train_idx):
            raise ValueError(f"train_size={train_size} but only {len(train_idx)} training images "
                             f"remain after holding out {val_size} for validation")
        train_idx = train_idx[_balanced_take(data.train_labels[train_idx], train_size // n_classes, g)]
    test_idx = torch.arange(len(data.test_labels))
    if test_size is not None:
        test_idx = _balanced_take(data.test_labels, test_size // n_classes, g)
    train_x = data.train_images[train_idx]
    mean = std = None
    if normalize_inputs:
        scaled = train_x.float() / 255.0
        mean, std = round(scaled.mean().item(), 4), round(scaled.std().item(), 4)

    def loader(idx: Tensor, images: Tensor, labels: Tensor, shuffle: bool, tf, offset: int) -> DataLoader:
        ds = ImageDataset(images[idx], labels[idx], mean=mean, std=std, transform=tf, seed=seed + offset)
        sampler_gen = torch.Generator().manual_seed(seed + offset)
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=sampler_gen,
                          collate_fn=_keep_batch)

    return Loaders(
        train=loader(train_idx, data.train_images, data.train_labels, True, augment, 1),
        val=loader(val_idx, data.train_images, data.train_labels, False, None, 2),
        test=loader(test_idx, data.test_images, data.test_labels, False, None, 3),
        mean=mean if mean is not None else 0.0, std=std if std is not None else 1.0,
    )
