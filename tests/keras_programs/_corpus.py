"""Run the Keras conformance corpus: real Keras 3 programs, each on bigmodel or on real Keras.

The programs in this folder are pure Keras (``import keras``, ``from keras import layers``). For
bigmodel only their import lines are rewritten (:func:`rewrite_imports`); nothing else changes.

Running: :func:`run_programs` starts ONE runner subprocess (``OMP_NUM_THREADS=1``) that imports
torch and the Keras implementation once (and makes one throw-away torch optimizer, whose first
construction imports torch._dynamo), then forks a child per program (``jobs`` at a time), each
in its own empty working folder, with its own timeout. Importing torch costs ~2 s of CPU, the
programs ~1 s each: paying the import once keeps the whole corpus well under a minute on 2 cores.

Each program ends by printing one line ``RESULT key=value ...`` (its final metrics);
:func:`parse_result` reads it.

Run directly: ``python tests/keras_programs/_corpus.py --backend bigmodel|keras [--jobs 2]
[--timeout 60] [prog.py ...]`` prints one JSON object ``{program: outcome}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROGRAM_DIR = Path(__file__).resolve().parent
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

# `import keras` / `import keras as k` / `import keras.ops as ops` / `from keras import x` /
# `from keras.layers import x` (any indentation: programs import inside functions too).
_IMPORT_KERAS = re.compile(r"^(?P<indent>[ \t]*)import keras(?P<rest>(\.[\w.]+)?( as \w+)?)[ \t]*(?P<comment>#.*)?$")
_FROM_KERAS = re.compile(r"^(?P<indent>[ \t]*)from keras(?P<sub>(\.[\w.]+)?) import (?P<names>.*)$")


def list_programs() -> list[str]:
    """The corpus: every ``*.py`` in this folder not starting with ``_``, sorted."""
    return sorted(p.name for p in PROGRAM_DIR.glob("*.py") if not p.name.startswith("_"))


def rewrite_imports(source: str) -> str:
    """Rewrite a Keras program's import lines to import bigmodel's Keras instead.

    ``import keras`` -> ``from bigmodel import keras``; ``import keras as K`` ->
    ``from bigmodel import keras as K``; ``import keras.ops as ops`` ->
    ``from bigmodel.keras import ops``; ``from keras import X`` -> ``from bigmodel.keras import X``;
    ``from keras.a.b import X`` -> ``from bigmodel.keras.a.b import X``. Every other line is kept
    byte for byte (``keras.`` in code keeps working: the name ``keras`` is bound as before).

    Args:
        source: the program's text.

    Returns:
        The rewritten text.

    Raises:
        ValueError: a form that binds a dotted name (``import keras.layers`` without ``as``),
            which has no one-line equivalent.
    """
    out = []
    for line in source.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        match = _IMPORT_KERAS.match(body)
        if match:
            rest = match.group("rest")
            comment = f"  {match.group('comment')}" if match.group("comment") else ""
            dotted, _, alias = rest.partition(" as ")
            if not dotted:
                body = f"{match['indent']}from bigmodel import keras{' as ' + alias if alias else ''}"
            elif alias:
                parent, _, leaf = f"bigmodel.keras{dotted}".rpartition(".")
                body = f"{match['indent']}from {parent} import {leaf} as {alias}"
            else:
                raise ValueError(f"cannot rewrite {body.strip()!r}: use 'from keras... import ...'")
            body += comment
        else:
            match = _FROM_KERAS.match(body)
            if match:
                body = f"{match['indent']}from bigmodel.keras{match['sub']} import {match['names']}"
        out.append(body + ending)
    return "".join(out)


def parse_result(stdout: str) -> dict[str, float | str]:
    """The ``key=value`` pairs of the last ``RESULT`` line (numbers as floats); {} if none."""
    result: dict[str, float | str] = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT"):
            result = {}
            for pair in line.split()[1:]:
                key, _, value = pair.partition("=")
                try:
                    result[key] = float(value)
                except ValueError:
                    result[key] = value
    return result


def keras_home(root: Path) -> Path:
    """A ``KERAS_HOME`` whose dataset cache holds the local Fashion-MNIST files (links), so real
    Keras's ``fashion_mnist.load_data()`` finds them instead of downloading."""
    target = root / "datasets" / "fashion-mnist"
    target.mkdir(parents=True, exist_ok=True)
    for name in FASHION_FILES:
        link = target / name
        if not link.exists() and (FASHION_DIR / name).exists():
            link.symlink_to(FASHION_DIR / name)
    return root


def run_programs(names: list[str] | None = None, backend: str = "bigmodel", jobs: int = 2,
                 timeout: float = 60.0) -> dict[str, dict]:
    """Run programs of the corpus in one runner subprocess (see the module docstring).

    Args:
        names: program file names (default: the whole corpus).
        backend: ``"bigmodel"`` (imports rewritten) or ``"keras"`` (real Keras 3, torch backend).
        jobs: programs run at the same time.
        timeout: seconds per program before it is killed.

    Returns:
        ``{name: {"rc", "seconds", "cpu_seconds", "stdout", "stderr", "result"}}``; ``rc`` is -9
        for a timeout; ``seconds`` is wall time, ``cpu_seconds`` the child's own CPU time.
    """
    names = list(names) if names is not None else list_programs()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", KERAS_BACKEND="torch",
               PYTHONHASHSEED="0", BIGMODEL_OFFLINE="1")
    with tempfile.TemporaryDirectory(prefix="keras-corpus-") as tmp:
        env["KERAS_HOME"] = str(keras_home(Path(tmp) / "keras-home"))
        command = [sys.executable, str(Path(__file__).resolve()), "--backend", backend,
                   "--jobs", str(jobs), "--timeout", str(timeout), "--workdir", tmp, *names]
        proc = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=timeout * len(names) + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"corpus runner failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


# ---------------------------------------------------------------------------- runner process
def _import_backend(backend: str) -> None:
    """Import torch and the Keras implementation once, before forking (children inherit it)."""
    import torch

    torch.set_num_threads(1)
    # torch.optim.Optimizer.__init__ lazily imports torch._dynamo (and sympy): ~1.5 s of CPU on the
    # first optimizer a process makes. Paid here once instead of in every child; no Keras state.
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    if backend == "bigmodel":
        from bigmodel import keras  # noqa: F401
        from bigmodel.keras import layers, ops  # noqa: F401
    else:
        import keras  # noqa: F401


def _seed_everything(seed: int) -> None:
    """Fixed Python, NumPy and torch generators in each child: most programs set no seed, and a
    forked child would otherwise inherit the parent's random start (a program whose outcome is a
    coin toss, such as a contrastive loss stuck at its plateau, made the suite flaky)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    # torch is imported before the fork (_import_backend); a runner that skips that (the runner's
    # own test, programs without torch) must not pay seconds for its import in every child
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def _child(name: str, source: str, workdir: Path, out_path: Path, err_path: Path) -> None:
    """Run one program in this (forked) process; never returns."""
    code = 0
    try:
        os.chdir(workdir)
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        sys.argv = [name]
        _seed_everything(0)
        exec(compile(source, str(PROGRAM_DIR / name), "exec"), {"__name__": "__main__",
                                                                "__file__": name})
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the traceback is the program's outcome
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _runner(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["bigmodel", "keras"], default="bigmodel")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("programs", nargs="*")
    args = parser.parse_args(argv)
    names = args.programs or list_programs()
    own_tmp = None
    if args.workdir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="keras-corpus-")
        args.workdir = own_tmp.name
        os.environ.setdefault("KERAS_HOME", str(keras_home(Path(own_tmp.name) / "keras-home")))
    os.environ.setdefault("KERAS_BACKEND", "torch")
    work = Path(args.workdir)
    _import_backend(args.backend)

    pending = list(names)
    running: dict[int, tuple[str, float]] = {}
    outcomes: dict[str, dict] = {}
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            name = pending.pop(0)
            source = (PROGRAM_DIR / name).read_text()
            if args.backend == "bigmodel":
                source = rewrite_imports(source)
            folder = work / name.removesuffix(".py")
            folder.mkdir(parents=True, exist_ok=True)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(name, source, folder, folder / "_stdout", folder / "_stderr")
            running[pid] = (name, time.perf_counter())
        time.sleep(0.02)
        for pid, (name, start) in list(running.items()):
            done, status, usage = os.wait4(pid, os.WNOHANG)
            elapsed = time.perf_counter() - start
            if done == 0 and elapsed < args.timeout:
                continue
            if done == 0:  # past its timeout
                os.kill(pid, signal.SIGKILL)
                _, _, usage = os.wait4(pid, 0)
                rc = -9
            else:
                rc = os.waitstatus_to_exitcode(status)
            del running[pid]
            folder = work / name.removesuffix(".py")
            stdout = (folder / "_stdout").read_text(errors="replace")
            stderr = (folder / "_stderr").read_text(errors="replace")
            outcomes[name] = {"rc": rc, "seconds": round(elapsed, 2),
                              "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                              "stdout": stdout[-6000:],
                              "stderr": stderr[-6000:], "result": parse_result(stdout)}
    json.dump(outcomes, sys.stdout)
    if own_tmp is not None:
        own_tmp.cleanup()


if __name__ == "__main__":
    _runner(sys.argv[1:])
