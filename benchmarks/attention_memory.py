"""Peak memory of attention (forward + backward) on the CPU: fused kernel vs the explicit L x L path.

``bigmodel.nn.attention.scaled_dot_product_attention`` runs on PyTorch's fused kernel unless the
attention weights are requested; then it materializes the ``(B, H, L, L)`` weights. Each
measurement runs in a fresh process and reports the growth of the peak resident set size (RSS)
over the memory held before the call (inputs and warm-up included), so the numbers are
comparable across paths and lengths.

    .venv/bin/python benchmarks/attention_memory.py [--lengths 512 1024 2048] [--heads 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(path: str, length: int, heads: int, head_dim: int, causal: bool) -> float:
    """Peak RSS growth in MiB of one forward + backward, in this process (call in a fresh one)."""
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from bigmodel.nn.attention import scaled_dot_product_attention

    torch.set_num_threads(1)
    q, k, v = (torch.randn(1, heads, length, head_dim, requires_grad=True) for _ in range(3))
    # Warm up on a tiny input so kernel set-up is not counted.
    small = [t[:, :, :8].detach().requires_grad_() for t in (q, k, v)]
    out, _ = scaled_dot_product_attention(*small, is_causal=causal, return_weights=path == "explicit")
    out.sum().backward()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out, _ = scaled_dot_product_attention(q, k, v, is_causal=causal,
                                          return_weights=path == "explicit")
    out.sum().backward()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (after - before) / 1024.0  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--causal", action="store_true", default=True)
    parser.add_argument("--measure", nargs=2, metavar=("PATH", "LENGTH"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.measure:  # child process
        print(measure(args.measure[0], int(args.measure[1]), args.heads, args.head_dim,
                      args.causal))
        return {}
    rows = {}
    for length in args.lengths:
        for path in ("fused", "explicit"):
            command = [sys.executable, __file__, "--measure", path, str(length), "--heads",
                       str(args.heads), "--head-dim", str(args.head_dim)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows[(path, length)] = float(output.strip().splitlines()[-1])
    matrix = {length: 4 * args.heads * length * length / 2**20 for length in args.lengths}
    print(f"Attention forward+backward, batch 1, {args.heads} heads x {args.head_dim}, causal, "
          f"float32; peak RSS growth in MiB (one (B,H,L,L) float32 matrix: see last column)")
    print("| L | fused (SDPA kernel) | explicit (weights returned) | one L x L matrix |")
    print("| ---: | ---: | ---: | ---: |")
    for length in args.lengths:
        print(f"| {length} | {rows[('fused', length)]:.1f} | {rows[('explicit', length)]:.1f} | "
              f"{matrix[length]:.1f} |")
    result = {f"{path}_{length}": value for (path, length), value in rows.items()}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
