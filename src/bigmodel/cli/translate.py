"""``bigmodel translate RUN_DIR "TEXT" ["TEXT" ...] [--input FILE.txt] [--beam N]
[--max-length L]``: decode texts with a seq2seq run (``task: seq2seq``, e.g.
``configs/seq2seq_dates.yaml``: ``"5 apr 23"`` -> ``2023-04-05``).

Prints one line per input, in order: the texts given on the command line first, then the lines of
``--input`` (blank lines skipped); leading and trailing spaces of every text are dropped. The work is
:func:`bigmodel.recipes.generation.translate_with_run`.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "translate", parents=parents, help="decode texts with a seq2seq run",
        description="Decode each text with the encoder-decoder of a run directory (task: "
                    "seq2seq) and print one output line per input, in order. Greedy by default; "
                    "--beam N > 1 keeps the N best partial outputs (beam search). Every character "
                    "of a text must occur in the run's training sources.")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a directory written by 'bigmodel train' for a seq2seq recipe")
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to decode")
    parser.add_argument("--input", default=None, metavar="FILE.txt",
                        help="a UTF-8 text file, one text per line (blank lines skipped)")
    parser.add_argument("--beam", type=int, default=1, metavar="N",
                        help="beam width: 1 = greedy (default), more = beam search")
    parser.add_argument("--max-length", type=int, default=None, metavar="L",
                        help="most output tokens per text (default: the model's max_length - 1)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts decoded together")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.generation import read_lines, translate_with_run

    texts = [text.strip() for text in args.texts]  # as the lines of --input are
    if args.input is not None:
        texts += read_lines(args.input)
    if not texts:
        raise ConfigError("translate: give the texts to decode, or --input FILE.txt (one text "
                          "per line)")
    for output in translate_with_run(args.run_dir, texts, args.beam, args.max_length,
                                     args.batch_size, args.device):
        print(output)
    return 0
