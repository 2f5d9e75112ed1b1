"""GPT training speed on the CPU: bigmodel's GPT + Trainer against a hand-written reference.

The reference is the smallest decoder-only training loop one would write by hand (nanoGPT's
layout: fused QKV projection, ``F.scaled_dot_product_attention(is_causal=True)``, GELU MLP, tied
head; ``zero_grad / forward / loss / backward / step``), with the same sizes, initial weights,
optimizer and batches. The two run interleaved in blocks of steps, repeated, and the ratio of their
median tokens/s is reported, so the shared machine's noise cancels.

Time is the process's CPU time (``time.process_time``) by default: with one thread that is the time
a dedicated core would take, and it does not count the time other jobs on a shared machine hold the
core (``--clock wall`` measures wall-clock time instead).

Also printed: training FLOPs per token (``6 N + 12 L d T``), the matmul peak measured in the same
process, and each side's model-FLOPs utilization (MFU) against it.

    .venv/bin/python benchmarks/gpt_throughput.py [--threads 1] [--rounds 5] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


class RefBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class RefGPT(nn.Module):
    def __init__(self, vocab: int, length: int, d: int, heads: int, layers: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Parameter(torch.zeros(length, d))
        self.blocks = nn.ModuleList(RefBlock(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids) + self.wpe[: ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def copy_weights(model, ref: RefGPT) -> None:
    """Same starting point: bigmodel's GPT weights into the reference layout."""
    with torch.no_grad():
        ref.wte.weight.copy_(model.token_embedding.weight)
        ref.wpe.copy_(model.position.weight)
        for block, layer in zip(ref.blocks, model.blocks.layers):
            block.ln1.load_state_dict(layer.norm1.state_dict())
            block.ln2.load_state_dict(layer.norm2.state_dict())
            block.qkv.load_state_dict(layer.self_attn.in_proj.state_dict())
            block.proj.load_state_dict(layer.self_attn.out_proj.state_dict())
            block.fc.load_state_dict(layer.ffn.linear1.state_dict())
            block.out.load_state_dict(layer.ffn.linear2.state_dict())
        ref.ln_f.load_state_dict(model.blocks.final_norm.state_dict())


def matmul_peak(clock, size: int = 1024, repeats: int = 20) -> float:
    """Best FLOP/s of a float32 ``size x size`` matmul on this process's threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = 0.0
    for _ in range(repeats):
        start = clock()
        a @ b
        best = max(best, 2 * size**3 / max(clock() - start, 1e-9))
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=256)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)

    from bigmodel.engine import Trainer
    from bigmodel.models.gpt import GPT, language_model_loss

    torch.manual_seed(0)
    model = GPT(vocab_size=args.vocab, max_length=args.length, d_model=args.d_model,
                num_heads=args.heads, num_layers=args.layers)
    ref = RefGPT(args.vocab, args.length, args.d_model, args.heads, args.layers)
    copy_weights(model, ref)
    data = torch.randint(0, args.vocab, (args.batch * args.steps, args.length + 1))
    x, y = data[:, :-1], data[:, 1:]
    trainer = Trainer(model, loss=language_model_loss, optimizer="adamw", lr=3e-4, verbose=0,
                      device="cpu")
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=3e-4)

    def run_ours() -> float:
        start = clock()
        trainer.fit((x, y), epochs=1, batch_size=args.batch, shuffle=False)
        return x.numel() / (clock() - start)

    def run_reference() -> float:
        ref.train()
        start = clock()
        for i in range(0, len(x), args.batch):
            ref_opt.zero_grad(set_to_none=True)
            logits = ref(x[i: i + args.batch])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i: i + args.batch].reshape(-1))
            loss.backward()
            ref_opt.step()
        return x.numel() / (clock() - start)

    run_ours(), run_reference()  # warm-up
    ours, reference = [], []
    for round_index in range(args.rounds):
        order = (run_ours, run_reference) if round_index % 2 == 0 else (run_reference, run_ours)
        for fn in order:
            (ours if fn is run_ours else reference).append(fn())
    peak = matmul_peak(clock)
    flops = model.flops_per_token(args.length)
    result = {
        "config": vars(args), "parameters": model.num_parameters(),
        "tokens_per_s_bigmodel": statistics.median(ours),
        "tokens_per_s_reference": statistics.median(reference),
        "ratio": statistics.median(o / r for o, r in zip(ours, reference)),
        "flops_per_token": flops, "matmul_peak_flops": peak,
        "mfu_bigmodel": statistics.median(ours) * flops / peak,
        "mfu_reference": statistics.median(reference) * flops / peak,
    }
    print(f"GPT d={args.d_model} L={args.layers} h={args.heads} T={args.length} B={args.batch}, "
          f"{result['parameters']:,} parameters, {args.threads} thread(s), {args.clock} time")
    print(f"bigmodel GPT + Trainer: {result['tokens_per_s_bigmodel']:.0f} tokens/s; hand-written "
          f"reference: {result['tokens_per_s_reference']:.0f} tokens/s; ratio (median of paired "
          f"rounds) {result['ratio']:.3f} (target >= 0.95)")
    print(f"FLOPs/token {flops / 1e6:.1f} M; matmul peak {peak / 1e9:.1f} GFLOP/s; MFU bigmodel "
          f"{100 * result['mfu_bigmodel']:.1f}%, reference {100 * result['mfu_reference']:.1f}%")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
