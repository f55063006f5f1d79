"""Trains the digit classifier that scores generative models (FD, conditional accuracy) on
the shared MNIST training split and saves it where mp3d.generative.evaluation looks for it:
$MP3D_CACHE/digit_classifier.pt when MP3D_CACHE is set, else ~/.cache/mp3d/digit_classifier.pt
(or --out). Nothing is downloaded: the checkpoint is made here, from the data.

    python scripts/train_digit_classifier.py                 # about 3 minutes on 2 CPU cores
    python scripts/train_digit_classifier.py --epochs 12 --out /tmp/classifier.pt

Exits with status 1 (after saving) when the accuracy on the 1,000 evaluation images is
below the 98.5% that the scores assume.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mp3d.data.mnist import load_mnist
from mp3d.generative.evaluation import (
    default_classifier_path,
    save_digit_classifier,
    train_digit_classifier,
)

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
TARGET = 0.985


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST, help="folder of MNIST IDX files")
    parser.add_argument("--out", type=Path, default=None, help="default: the cache path above")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--width", type=int, default=16, help="channels of the first convs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"MNIST not found at {args.data} (see shared/data/README.md)")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    data = load_mnist(args.data)
    print(f"{data.source}")
    classifier = train_digit_classifier(
        data, epochs=args.epochs, seed=args.seed, width=args.width, progress=not args.quiet
    )
    path = save_digit_classifier(classifier, args.out or default_classifier_path())
    print(
        f"accuracy    {classifier.accuracy:.2%} on the {len(data.test_images)} evaluation "
        f"images ({args.epochs} epochs in {classifier.train_seconds:.0f} s)"
    )
    print(f"classifier  {path}")
    if classifier.accuracy < TARGET:
        print(f"below the {TARGET:.1%} target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
