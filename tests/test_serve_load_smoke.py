"""``benchmarks/serve_load.py`` end to end on a tiny setting (in-process servers, a few requests):
every request answered correctly by both servers, the JSON written. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="bigmodel serve needs the extra 'serve' (fastapi missing)")
pytest.importorskip("httpx", reason="the serve benchmark needs httpx (extra 'serve')")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_load.py"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_serve_load_benchmark_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("_bench_serve_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--requests", "12", "--concurrency", "1", "4", "--in-process",
                          "--max-seconds", "60", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "serve_load.json").read_text()) == report
    rows = {(r["server"], r["concurrency"]): r for r in report["results"]}
    assert set(rows) == {(s, c) for s in ("batched", "per-request") for c in (1, 4)}
    for row in rows.values():
        assert row["requests"] == 12 and row["failed"] == 0
        assert row["p99_ms"] >= row["p50_ms"] > 0
