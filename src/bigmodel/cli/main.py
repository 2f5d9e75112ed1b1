"""Entry point of the ``bigmodel`` command.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``, which registers the
subcommand and sets ``func`` (``args -> exit code``). Errors a user can cause (any
:class:`~bigmodel.errors.BigModelError`) print one message on stderr and exit with code 2 (a
preempted run: 143/130); an ``OSError``/``MemoryError`` prints its message and exits 1; any other
exception is reported as an unexpected error (a bug: rerun with ``--debug``) and exits 1. No
traceback is printed unless ``--debug`` is given, which re-raises instead.

What the dependencies say stays off the console unless ``--debug`` is given
(:func:`quiet_dependencies`): their Python warnings and their log messages below ERROR (torchao's
``.so`` load failures, PyTorch's deprecation notices, transformers' advice). bigmodel's own
warnings still print, as one ``warning: ...`` line each. This happens here, in the command, not in
the library: a program that imports bigmodel sees every warning as usual.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from bigmodel import __version__
from bigmodel.errors import BigModelError
from bigmodel.recipes import workers

EXIT_USAGE = 2  # argparse's own code for bad arguments; also used for every BigModelError
EXIT_INTERRUPTED = 130
EXIT_FAILURE = 1  # anything that is not the user's input: the machine (disk, memory) or a bug


# Subcommand modules, in help order. A module listed here that does not exist (yet) is skipped, so
# each feature adds its own ``cli/<name>.py`` without editing this file.
COMMANDS = ("train", "evaluate", "predict", "generate", "translate", "info", "explain", "finetune",
            "compress", "export", "plan", "serve")


def _command_modules() -> list:
    import importlib

    modules = []
    for name in COMMANDS:
        try:
            modules.append(importlib.import_module(f"bigmodel.cli.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"bigmodel.cli.{name}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS keeps a --debug given before the subcommand from being reset by the subparser.
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    parser = argparse.ArgumentParser(
        prog="bigmodel", parents=[common],
        description="Train, evaluate and use deep-learning models from YAML recipes.")
    parser.add_argument("--version", action="version", version=f"bigmodel {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        module.add_parser(subparsers, [common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bigmodel`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    A torchrun worker reading its own command line (``argv`` None, ``WORLD_SIZE`` and ``RANK`` set)
    does not return: it ends through :func:`bigmodel.recipes.workers.end_worker` with the exit code.
    """
    code = _run(argv)
    if argv is None and workers.under_torchrun():
        workers.end_worker(code)
    return code


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_default_formatwarning = warnings.formatwarning


def compact_warning(message, category, filename, lineno, line=None) -> str:
    """bigmodel's own warnings as one ``warning: ...`` line (the traceback-style default prints
    the source line of the library, which tells a user nothing); others keep Python's format."""
    if os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep):
        return f"warning: {message}\n"
    return _default_formatwarning(message, category, filename, lineno, line)


# Loggers of dependencies that set their own level (so the root logger's does not reach them).
THIRD_PARTY_LOGGERS = ("torch", "torchao", "transformers", "onnx", "onnxruntime", "onnxscript",
                       "captum", "gensim", "matplotlib", "PIL", "h5py", "huggingface_hub",
                       "safetensors", "urllib3")


def _warning_issuer() -> str:
    """The module that called ``warnings.warn`` (the first frame outside the warnings module):
    a dependency's warning raised with ``stacklevel`` pointing into bigmodel is still its own."""
    frame = sys._getframe(2)
    while frame is not None and os.path.basename(frame.f_code.co_filename) == "warnings.py":
        frame = frame.f_back
    return "" if frame is None else str(frame.f_globals.get("__name__", ""))


def _own_warnings_only(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the command: bigmodel's warnings as one line, others dropped."""
    issuer = _warning_issuer()
    if issuer != "bigmodel" and not issuer.startswith("bigmodel."):
        return
    stream = file if file is not None else sys.stderr
    try:
        stream.write(f"warning: {message}\n")
    except (OSError, ValueError):  # a closed stream: nothing to report to
        pass


@contextlib.contextmanager
def quiet_dependencies() -> Iterator[None]:
    """While the command runs: drop warnings that dependencies issue and their log messages
    below ERROR; bigmodel's warnings print as ``warning: ...`` lines. Everything is restored
    afterwards (``main`` may be called inside a program or a test)."""
    import torch  # noqa: F401  (every command loads it; its import sets the torch loggers' levels)

    saved_warnings = warnings.showwarning, warnings.formatwarning
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in THIRD_PARTY_LOGGERS)]
    saved_levels = [logger.level for logger in loggers]
    own = logging.getLogger("bigmodel")
    own_level = own.level
    saved_env = os.environ.get("TRANSFORMERS_VERBOSITY")
    warnings.showwarning, warnings.formatwarning = _own_warnings_only, compact_warning
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    if own_level == logging.NOTSET:  # its effective level would be the root's ERROR now
        own.setLevel(logging.WARNING)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers loads
    try:
        yield
    finally:
        warnings.showwarning, warnings.formatwarning = saved_warnings
        for logger, level in zip(loggers, saved_levels):
            logger.setLevel(level)
        own.setLevel(own_level)
        if saved_env is None:
            os.environ.pop("TRANSFORMERS_VERBOSITY", None)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: keep argparse's code
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    debug = getattr(args, "debug", False)
    try:
        with contextlib.nullcontext() if debug else quiet_dependencies():
            return int(args.func(args) or 0)
    except BigModelError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_USAGE))  # Preempted: 128 + the signal
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (OSError, MemoryError) as exc:  # the machine, not the input: disk, permissions, memory
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc or 'out of memory'} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # a bug or an unwrapped library error: say so, never hide it
        if debug:
            raise
        print(f"error: unexpected error {type(exc).__name__}: {exc}\nThis is likely a bug in "
              "bigmodel; rerun with --debug to see the traceback, and report it", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
