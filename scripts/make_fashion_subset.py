"""Build the balanced Fashion-MNIST subset shipped inside courselib.

Source: the full Fashion-MNIST IDX files (Debian package ``dataset-fashion-mnist``,
or any folder given with --source). Picks, with a fixed seed, the same number of
images from every class, saves them as a compressed .npz and writes a manifest with
the source, the seed and a SHA-256 of the arrays, which ``courselib.data`` verifies.

    python scripts/make_fashion_subset.py [--source DIR] [--train-per-class 1000] [--test-per-class 200]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from courselib.data import DEBIAN_DIR, FILES, SUBSET_FILE, SUBSET_MANIFEST, _load_idx_folder, subset_checksum

OUT = Path(__file__).resolve().parents[1] / "src" / "courselib" / "datasets"


def balanced(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    idx = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(10)]
    return np.sort(np.concatenate(idx))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEBIAN_DIR)
    ap.add_argument("--train-per-class", type=int, default=1000)
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2017)
    args = ap.parse_args()

    full = _load_idx_folder(args.source, source=str(args.source))  # verifies checksums
    rng = np.random.default_rng(args.seed)
    tr = balanced(full.train_labels.numpy(), args.train_per_class, rng)
    te = balanced(full.test_labels.numpy(), args.test_per_class, rng)
    arrays = dict(
        train_images=full.train_images.numpy()[tr], train_labels=full.train_labels.numpy()[tr].astype(np.uint8),
        test_images=full.test_images.numpy()[te], test_labels=full.test_labels.numpy()[te].astype(np.uint8),
    )
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / SUBSET_FILE, **arrays)
    manifest = {
        "description": "Balanced subset of Fashion-MNIST (Zalando SE, MIT licence)",
        "source_files": {k + ".gz": "sha256 of decompressed content " + v for k, v in FILES.items()},
        "seed": args.seed,
        "train_per_class": args.train_per_class,
        "test_per_class": args.test_per_class,
        "train_indices_first": tr[:5].tolist(),
        "sha256": subset_checksum(arrays["train_images"], arrays["train_labels"],
                                  arrays["test_images"], arrays["test_labels"]),
    }
    (OUT / SUBSET_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    size = (OUT / SUBSET_FILE).stat().st_size
    print(f"wrote {OUT / SUBSET_FILE} ({size / 1e6:.1f} MB), sha256 {manifest['sha256'][:16]}...")


if __name__ == "__main__":
    main()
