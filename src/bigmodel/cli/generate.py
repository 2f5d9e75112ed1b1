"""``bigmodel generate RUN_DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K]
[--seed S] [--num-samples M]``: continue a text with a language-model run (``task:
language_model``, e.g. ``configs/fortunes_char_gpt.yaml``).

Prints each sample (the prompt followed by its ``N`` new characters); with ``--num-samples`` above 1
each sample is introduced by a ``--- sample i ---`` line. The work is
:func:`bigmodel.recipes.generation.generate_from_run`.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "generate", parents=parents, help="continue a text with a language-model run",
        description="Continue --prompt with the character-level language model of a run "
                    "directory (task: language_model). Temperature 0 is greedy (the most likely "
                    "character every step, the same output every time); otherwise characters are "
                    "sampled, reproducibly with --seed. Past the model's context (its "
                    "max_length) the window slides: each character is predicted from the last "
                    "max_length characters. Every prompt character must occur in the run's "
                    "training text.")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a directory written by 'bigmodel train' for a language_model recipe")
    parser.add_argument("--prompt", required=True, metavar="TEXT",
                        help="the start of the text (at least one character)")
    parser.add_argument("--max-tokens", type=int, default=100, metavar="N",
                        help="new characters per sample (default 100)")
    parser.add_argument("--temperature", type=float, default=1.0, metavar="T",
                        help="sampling temperature: 0 = greedy, below 1 safer, above 1 wilder "
                             "(default 1.0)")
    parser.add_argument("--top-k", type=int, default=None, metavar="K",
                        help="sample among the K most likely characters only (default: all)")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="seed for reproducible samples (default: not seeded)")
    parser.add_argument("--num-samples", type=int, default=1, metavar="M",
                        help="independent samples of the same prompt (default 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigmodel.recipes.generation import generate_from_run

    samples = generate_from_run(args.run_dir, args.prompt, args.max_tokens, args.temperature,
                                args.top_k, args.seed, args.num_samples, args.device)
    for number, sample in enumerate(samples, 1):
        if len(samples) > 1:
            print(f"--- sample {number} ---")
        print(sample.text)
    return 0
