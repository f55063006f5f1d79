"""Character-level language models on tiny Shakespeare (first 90% of the characters for
training, last 10% for validation): the char-transformer and the char-LSTM (any of
mp3d.sequence's models with --models) each trained for a fixed wall-time budget, then their
validation loss in nats per character beside nanoGPT's published figures and the goal of
issue 15 (transformer <= 1.7), with a sample of each.

    python bench/quality_sequence.py                       # transformer and lstm, 10 min each
    python bench/quality_sequence.py --minutes 0.5         # a quick check that it runs
    python bench/quality_sequence.py --models gru vrnn --minutes 5 --threads 2

nanoGPT's README (shakespeare_char): about 1.88 validation loss for its CPU-sized model
(4 layers, 4 heads, width 128, context 64, batch 12, 2000 iterations: a few minutes on a
laptop CPU), 1.47 for its 6x384 model after 5000 iterations on a GPU. Its loss is the same
quantity as ours: mean cross-entropy in nats of the next character over windows of the
context length. Timings depend on what else runs: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from mp3d.data.text import load_char_corpus
from mp3d.sequence import MODEL_NAMES, SequenceConfig, sample_text, train_sequence_model

TEXT = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "text" / "tinyshakespeare.txt"
)
PUBLISHED = {
    "transformer": "nanoGPT: ~1.88 (CPU model, few min on a laptop), 1.47 (6x384 on a GPU)",
    "lstm": "char-rnn LSTMs reach ~1.4-1.5 after hours",
}
GOALS = {"transformer": 1.7}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["transformer", "lstm"],
        choices=MODEL_NAMES,
        help="default: transformer lstm",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget each")
    parser.add_argument("--data", type=Path, default=TEXT)
    parser.add_argument("--out", type=Path, default=Path("bench_out/sequence"))
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: fastest on a shared CPU)"
    )
    parser.add_argument("--sample-chars", type=int, default=400)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=None)
    args = parser.parse_args()
    if args.minutes <= 0 or args.threads < 1:
        raise SystemExit("--minutes must be > 0 and --threads >= 1")
    torch.set_num_threads(args.threads)
    if not args.data.is_file():
        raise SystemExit(f"tiny Shakespeare not found at {args.data} (see shared/data/README.md)")
    corpus = load_char_corpus(args.data)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{corpus.source}")
    print(f"{args.minutes:g} min of training per model, {args.threads} thread(s), load {load:.1f}")
    rows = []
    for name in args.models:
        start = time.perf_counter()
        config = SequenceConfig(model=name, steps=None, minutes=args.minutes, sample_chars=0)
        model = train_sequence_model(
            corpus, config, args.out / name, device=args.device, progress=False, fresh=True
        )
        spec = config.spec
        chars = (
            model.train_stats["steps"]
            * (config.batch_size or spec.batch_size)
            * (config.block or spec.block)
        )
        sample = sample_text(
            model, corpus.vocab, None, args.sample_chars, args.temperature, args.top_k, seed=0
        )
        (args.out / name / "sample.txt").write_text(sample, encoding="utf-8")
        rows.append((name, model, chars, time.perf_counter() - start, sample))
        print(f"  {name}: {model.val_loss:.4f} nats/char after {model.train_stats['steps']} steps")
    print()
    print(
        f"{'model':<13}{'val nats/char':>14}{'steps':>8}{'chars seen':>12}{'params':>10}"
        f"{'time':>8}  published / goal"
    )
    for name, model, chars, seconds, _ in rows:
        notes = [PUBLISHED.get(name, "")]
        if name in GOALS:
            met = model.val_loss <= GOALS[name]
            notes.append(f"goal <= {GOALS[name]:g}: {'met' if met else 'NOT met'}")
        params = sum(p.numel() for p in model.parameters())
        print(
            f"{name:<13}{model.val_loss:>14.4f}{model.train_stats['steps']:>8}{chars:>12,}"
            f"{params:>10,}{seconds:>7.0f}s  " + "; ".join(n for n in notes if n)
        )
    for name, *_, sample in rows:
        print(f"\n--- {name} (temperature {args.temperature:g}) ---\n{sample}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end: {load:.1f}; runs, metrics and samples: {args.out}/MODEL/")


if __name__ == "__main__":
    main()
