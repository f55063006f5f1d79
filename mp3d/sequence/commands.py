"""`mp3d seq train | eval | sample`: thin verbs over mp3d.sequence (registered in mp3d.cli).

`seq train MODEL --data FILE` trains a character-level language model on a UTF-8 text
file (first 90% for training, last 10% for validation); with --data naming a folder of
MNIST IDX files, rnn/lstm/gru/leaky train a sequential-MNIST classifier instead (rows as
time steps).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mp3d.cli import (
    COMMANDS,
    DEVICE_HELP,
    _add_command,
    _field_default,
    _file_type,
    _resumed,
    _trainer_config,
    add_trainer_options,
    device_type,
    int_in,
    number_in,
)

SEQ_HELP = "train, score and sample sequence models (char-level LMs, sequential MNIST)"
DATA_HELP = (
    "a UTF-8 text file (character language model: first 90%% trains, last 10%% validates), "
    "or a folder of MNIST IDX files (sequential-MNIST classification; rnn, leaky, lstm, gru)"
)


def _help() -> str:
    return COMMANDS.get("seq", SEQ_HELP)


def _data_kind(path: str) -> str:
    """'text' for a file, 'mnist' for a folder; FileNotFoundError naming --data otherwise."""
    data = Path(path)
    if data.is_dir():
        return "mnist"
    if data.is_file():
        return "text"
    raise FileNotFoundError(
        f"--data {path!r} not found: expected a UTF-8 text file or a folder of MNIST IDX files"
    )


def _model_options(args: argparse.Namespace) -> dict:
    """Model constructor options from --hidden, --layers, --heads, --dropout (those given)."""
    from mp3d.sequence.models import sequence_spec

    spec = sequence_spec(args.model)
    width = "dim" if "dim" in spec.options else "hidden"
    given = {
        width: args.hidden,
        "layers": args.layers,
        "heads": args.heads,
        "dropout": args.dropout,
        "impl": args.impl,
    }
    options = {}
    for name, value in given.items():
        if value is None:
            continue
        if name not in spec.options and not (name == "impl" and "kind" in spec.options):
            option = "--hidden" if name in ("dim", "hidden") else f"--{name}"
            raise ValueError(f"{option}: the {args.model} model does not take it")
        options[name] = value
    if "heads" in spec.options:
        dim, heads = options.get("dim", spec.options["dim"]), options.get("heads", 4)
        if dim % heads:
            raise ValueError(
                f"--heads {heads} must divide --hidden {dim} (the transformer's width)"
            )
    return options


def seq_train(args: argparse.Namespace) -> int:
    """Trains a sequence model. On a text file (--data FILE): a character-level language
    model (lstm, gru, rnn: truncated BPTT over streams with the hidden state carried;
    transformer: random windows; vrnn: -ELBO), scored by its validation loss in nats per
    character of the last 10% of the file. Writes OUT/checkpoint.pt (resumed),
    OUT/metrics.json and OUT/sample.txt. On a folder of MNIST IDX files: a sequential-MNIST
    classifier reading digits row by row, scored by its accuracy on the last 1,000 images."""
    if _data_kind(args.data) == "mnist":
        return _train_classifier(args)
    from mp3d.data.text import load_char_corpus
    from mp3d.sequence import SequenceConfig, train_sequence_model

    if args.model == "leaky":
        raise ValueError("leaky: the leaky-unit RNN trains on MNIST folders only (--data)")
    options = _model_options(args)
    corpus = load_char_corpus(args.data)
    config = _trainer_config(
        SequenceConfig,
        args,
        model=args.model,
        batch_size=args.batch_size,
        block=args.block,
        lr=args.lr,
    )
    model = train_sequence_model(
        corpus, config, args.out, args.device, not args.quiet, args.fresh, options
    )
    stats, out = model.train_stats, Path(args.out)
    bound = " (a bound: -ELBO)" if args.model == "vrnn" else ""
    print(
        f"trained     {args.model} on {len(corpus.train)} characters, {stats['steps']} steps "
        f"in {stats['seconds']:.0f} s{_resumed(stats)}"
    )
    print(f"validation  {model.val_loss:.4f} nats/char{bound}, {len(corpus.val)} characters")
    print(f"sample      {out / 'sample.txt'}")
    print(f"checkpoint  {out / 'checkpoint.pt'}")
    return 0


def _train_classifier(args: argparse.Namespace) -> int:
    from mp3d.data.mnist import load_mnist
    from mp3d.sequence.classify import (
        CLASSIFIER_KINDS,
        ClassifierConfig,
        train_sequence_classifier,
    )

    if args.model not in CLASSIFIER_KINDS:
        raise ValueError(
            f"--data {args.data!r} is an MNIST folder: sequential-MNIST classification "
            f"takes one of {CLASSIFIER_KINDS}, got {args.model!r}"
        )
    for option, value in (
        ("--impl", args.impl),
        ("--block", args.block),
        ("--heads", args.heads),
        ("--dropout", args.dropout),
    ):
        if value is not None:
            raise ValueError(f"{option}: sequential-MNIST classifiers do not take it")
    data = load_mnist(args.data)
    fields = {"model": args.model}
    for name in ("batch_size", "lr", "hidden", "layers"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    config = _trainer_config(ClassifierConfig, args, **fields)
    model = train_sequence_classifier(
        data, config, args.out, args.device, not args.quiet, args.fresh
    )
    stats, scores = model.train_stats, model.test_scores
    print(
        f"trained     sequential-MNIST {args.model} on {len(data.train_images)} digits, "
        f"{stats['steps']} steps in {stats['seconds']:.0f} s{_resumed(stats)}"
    )
    print(
        f"test        accuracy {scores['accuracy']:.4f}, {scores['nll']:.4f} nats, "
        f"{scores['images']} digits"
    )
    print(f"checkpoint  {Path(args.out) / 'checkpoint.pt'}")
    return 0


def _checkpoint_kind(path: str) -> str:
    from mp3d.io import checkpoint_format
    from mp3d.sequence.classify import FORMAT as CLASSIFIER_FORMAT
    from mp3d.sequence.train import FORMAT
    from mp3d.training import CHECKPOINT_NAME

    file = Path(path) / CHECKPOINT_NAME if Path(path).is_dir() else Path(path)
    found = checkpoint_format(file)
    if found not in (FORMAT, CLASSIFIER_FORMAT):
        raise ValueError(
            f"{file}: not an mp3d sequence checkpoint (format {found!r}, expected "
            f"{FORMAT!r} or {CLASSIFIER_FORMAT!r})"
        )
    return "classifier" if found == CLASSIFIER_FORMAT else "language"


def seq_eval(args: argparse.Namespace) -> int:
    """Scores a trained model (CKPT: its checkpoint or run folder): a language model by its
    loss in nats per character on the last 10% of the text file --data (its characters must
    be in the model's vocabulary), a sequential-MNIST classifier by its accuracy on the last
    1,000 digits of the MNIST folder --data."""
    kind = _checkpoint_kind(args.checkpoint)
    if kind == "classifier":
        from mp3d.data.mnist import load_mnist
        from mp3d.sequence.classify import evaluate_classifier, load_classifier

        model = load_classifier(args.checkpoint, args.device)
        data = load_mnist(args.data)
        scores = evaluate_classifier(model, data.test_images, data.test_labels)
        print(f"model       sequential-MNIST {model.kind} ({args.checkpoint})")
        print(f"test        accuracy {scores['accuracy']:.4f}, {scores['nll']:.4f} nats")
    else:
        from mp3d.data.text import read_text
        from mp3d.sequence import evaluate_loss, load_sequence_model

        model = load_sequence_model(args.checkpoint, args.device)
        text = read_text(args.data)
        val = text[int(len(text) * 0.9) :]
        ids = model.vocab.encode(val, f"--data {args.data}")
        loss = evaluate_loss(model, ids, model.batch_size, model.block_size, args.max_chars)
        scores = {"val_loss_nats_per_char": loss, "val_chars": len(ids), "model": model.name}
        print(f"model       {model.name} ({args.checkpoint})")
        print(f"validation  {loss:.4f} nats/char on the last 10% of {args.data}")
    if args.json is not None:
        from mp3d.rendering import write_json

        print(f"json        {write_json(args.json, scores)}")
    return 0


def seq_sample(args: argparse.Namespace) -> int:
    """Generates --length characters after --prompt from a trained character model (CKPT:
    its checkpoint or run folder), drawing each from softmax(logits / --temperature) over the
    --top-k most likely characters; prints the prompt and the text (or writes --out)."""
    from mp3d.sequence import load_sequence_model, sample_text

    if _checkpoint_kind(args.checkpoint) != "language":
        raise ValueError(f"{args.checkpoint}: a sequence classifier does not generate text")
    model = load_sequence_model(args.checkpoint, args.device)
    prompt = args.prompt
    if prompt is not None and args.escapes:
        prompt = prompt.encode("utf-8").decode("unicode_escape")
    if prompt is not None:
        if not prompt:
            raise ValueError("--prompt must hold at least one character, got ''")
        model.vocab.encode(prompt, "--prompt")  # unknown characters: an error naming --prompt
    text = sample_text(
        model, model.vocab, prompt, args.length, args.temperature, args.top_k, args.seed
    )
    if args.out is not None:
        from mp3d.io import atomic_path

        with atomic_path(args.out) as tmp:
            tmp.write_text(text, encoding="utf-8")
        print(f"sample      {args.out}")
    else:
        print(text)
    return 0


def add_seq_commands(commands) -> None:
    """`mp3d seq train`, `mp3d seq eval` and `mp3d seq sample`."""
    from mp3d.sequence.classify import CLASSIFIER_KINDS
    from mp3d.sequence.models import SPECS
    from mp3d.sequence.recurrent import IMPLS
    from mp3d.sequence.train import SequenceConfig

    seq = commands.add_parser("seq", help=_help(), description="Sequence models.")
    seq_commands = seq.add_subparsers(dest="seq_command", metavar="COMMAND", required=True)
    names = list(SPECS) + [k for k in CLASSIFIER_KINDS if k not in SPECS]
    listing = "; ".join(f"{name}: {spec.summary}" for name, spec in SPECS.items())
    listing += "; leaky: leaky-unit RNN (sequential MNIST only)"
    p = _add_command(seq_commands, "train", seq_train, "train a sequence model")
    p.add_argument("model", choices=names, metavar="MODEL", help=listing)
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument(
        "--batch-size",
        type=int_in(1, 1 << 14),
        default=None,
        help="sequences per step (default: the model's own)",
    )
    p.add_argument(
        "--block",
        type=int_in(1, 1 << 14),
        default=None,
        help="characters per window: the BPTT truncation length, or the "
        "transformer's context (default: the model's own)",
    )
    p.add_argument(
        "--lr",
        type=number_in(0.0, 1.0, open_low=True),
        default=None,
        help="peak AdamW learning rate (default: the model's own)",
    )
    p.add_argument(
        "--hidden",
        type=int_in(1, 1 << 14),
        default=None,
        help="hidden size, or the transformer's width (default: the model's own)",
    )
    p.add_argument(
        "--layers",
        type=int_in(1, 64),
        default=None,
        help="stacked layers or blocks (default: the model's own)",
    )
    p.add_argument(
        "--heads",
        type=int_in(1, 256),
        default=None,
        help="attention heads (transformer; default: 4)",
    )
    p.add_argument(
        "--impl",
        choices=IMPLS,
        default=None,
        help="rnn, lstm, gru: torch's fused layers (the default, faster) or mp3d's loop over "
        "the cells written from their equations; the same weights and outputs",
    )
    p.add_argument(
        "--dropout",
        type=number_in(0.0, 1.0, open_high=True),
        default=None,
        help="dropout rate (default: the model's own)",
    )
    add_trainer_options(p, _field_default(SequenceConfig, "steps"))

    p = _add_command(seq_commands, "eval", seq_eval, "validation loss or accuracy of a model")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file, or its run folder")
    p.add_argument("--data", required=True, help="the text file, or MNIST folder, to score on")
    p.add_argument(
        "--max-chars",
        type=int_in(1),
        default=None,
        help="score at most this many characters (default: all)",
    )
    p.add_argument(
        "--json",
        type=_file_type((".json",)),
        default=None,
        help="also write the scores to this JSON file",
    )
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)

    p = _add_command(seq_commands, "sample", seq_sample, "generate text from a model")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file, or its run folder")
    p.add_argument(
        "--prompt",
        default=None,
        help="text to continue (default: a newline, or the vocabulary's first "
        "character if it has none)",
    )
    p.add_argument(
        "--escapes", action="store_true", help=r"read backslash escapes in --prompt (\n, \t)"
    )
    p.add_argument(
        "--length",
        type=int_in(0, 1_000_000),
        default=500,
        help="characters to generate (default: %(default)s)",
    )
    p.add_argument(
        "--temperature",
        type=number_in(0.0, 10.0, open_low=True),
        default=1.0,
        help="softmax temperature: < 1 sharper, > 1 flatter (default: 1)",
    )
    p.add_argument(
        "--top-k",
        type=int_in(1),
        default=None,
        help="draw from the k most likely characters only (default: all)",
    )
    p.add_argument("--seed", type=int_in(0), default=0, help="random seed (default: 0)")
    p.add_argument(
        "--out",
        type=_file_type(),
        default=None,
        help="write the text to this file instead of printing it",
    )
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)
