"""The Keras conformance corpus on bigmodel and on real Keras 3 (torch backend), side by side.

Runs every program of ``tests/keras_programs/`` (or those named) twice: with its imports
rewritten to bigmodel, and unchanged under real Keras 3 with ``KERAS_BACKEND=torch`` (the ``keras``
dev dependency). Prints one Markdown table: per program, the exit status and CPU seconds of each
run and each final metric of its ``RESULT`` line for both. Numbers differ run to run (different
random initializations); the table shows whether both learned comparably.

Usage::

    python benchmarks/keras_programs.py [--jobs 2] [--out benchmarks/out/keras_programs.json]
        [prog.py ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

PROGRAM_DIR = Path(__file__).resolve().parents[1] / "tests" / "keras_programs"


def _corpus():
    if str(PROGRAM_DIR) not in sys.path:
        sys.path.insert(0, str(PROGRAM_DIR))
    import _corpus

    return _corpus


def _status(outcome: dict | None) -> str:
    if outcome is None:
        return "-"
    if outcome["rc"] == 0:
        return "ok"
    return "timeout" if outcome["rc"] == -9 else f"fails ({_last_error(outcome)})"


def _last_error(outcome: dict) -> str:
    lines = [line for line in outcome["stderr"].strip().splitlines() if line.strip()]
    text = lines[-1] if lines else f"rc {outcome['rc']}"
    return text.replace("|", "/")[:90]


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(bigmodel: dict[str, dict], keras: dict[str, dict]) -> str:
    """A Markdown table: one row per program, both runs' status, CPU time and metrics."""
    rows = ["| program | bigmodel | keras | CPU s (bigmodel / keras) | metric: bigmodel / keras |",
            "| --- | --- | --- | --- | --- |"]
    for name in sorted(set(bigmodel) | set(keras)):
        big, ker = bigmodel.get(name), keras.get(name)
        big_result = (big or {}).get("result", {})
        ker_result = (ker or {}).get("result", {})
        keys = list(dict.fromkeys([*ker_result, *big_result]))
        metrics = "; ".join(f"{k}: {_fmt(big_result.get(k))} / {_fmt(ker_result.get(k))}"
                            for k in keys)
        cpu = f"{_fmt((big or {}).get('cpu_seconds'))} / {_fmt((ker or {}).get('cpu_seconds'))}"
        rows.append(f"| {name.removesuffix('.py')} | {_status(big)} | {_status(ker)} | {cpu} | "
                    f"{metrics} |")
    ran = sum(1 for o in bigmodel.values() if o["rc"] == 0)
    ran_keras = sum(1 for o in keras.values() if o["rc"] == 0)
    rows.append("")
    rows.append(f"bigmodel ran {ran} of {len(bigmodel)}; real Keras ran {ran_keras} of {len(keras)}.")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("programs", nargs="*", help="program file names (default: all)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", default=None, help="JSON file for the outcomes")
    args = parser.parse_args(argv)
    corpus = _corpus()
    names = args.programs or corpus.list_programs()
    bigmodel = corpus.run_programs(names, backend="bigmodel", jobs=args.jobs, timeout=args.timeout)
    keras = corpus.run_programs(names, backend="keras", jobs=args.jobs, timeout=args.timeout)
    print(table(bigmodel, keras))
    report = {"bigmodel": bigmodel, "keras": keras}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
