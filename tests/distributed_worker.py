"""One training process for the distributed tests; run under torchrun or alone.

Trains a small transformer-like model (a stack of residual blocks in a ModuleList) on fixed
synthetic data with ``bigmodel.engine.Trainer`` and, on rank 0, writes the final full weights and the
per-epoch losses to ``--out`` (safetensors + JSON). ``--kill-at-epoch E`` SIGKILLs rank 1 at the start
of epoch E once (a marker file next to ``--out`` remembers it), to test elastic restarts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import torch
from torch import nn


class Block(nn.Module):
    """Pre-norm residual block: ``x + W2 gelu(W1 norm(x))`` then a token-mixing residual; ``(B, T, C)``."""

    def __init__(self, width: int, tokens: int, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 2 * width)
        self.down = nn.Linear(2 * width, width)
        self.mix = nn.Linear(tokens, tokens, bias=False)  # a bias here would get a zero gradient
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.down(nn.functional.gelu(self.up(self.norm(x)))))
        return x + self.mix(x.transpose(1, 2)).transpose(1, 2)


class TinyTransformer(nn.Module):
    def __init__(self, features: int = 6, width: int = 16, tokens: int = 4, depth: int = 3,
                 num_classes: int = 3, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Linear(features, width)
        self.blocks = nn.ModuleList(Block(width, tokens, dropout_rate) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, K)
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))


def make_data(samples: int, features: int = 6, tokens: int = 4, num_classes: int = 3):
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(samples, tokens, features, generator=generator)
    teacher = torch.randn(features, num_classes, generator=generator)
    y = (x.mean(dim=1) @ teacher).argmax(dim=1)
    return x, y


def main(argv: list[str] | None = None) -> int:
    """Run each ``::``-separated group of arguments in turn, in one process (group)."""
    import torch.distributed as dist

    argv = sys.argv[1:] if argv is None else list(argv)
    groups, current = [], []
    for item in argv:
        if item == "::":
            groups.append(current)
            current = []
        else:
            current.append(item)
    groups.append(current)
    for group in groups:
        run(group)
    if dist.is_initialized():
        import gc

        gc.collect()  # free the runs' models / optimizers while the interpreter is whole
        if dist.get_world_size() > 1:  # as DistributedContext.close: no rank leaves early
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()
    return 0


class _Crashed(Exception):
    """Raised by ``--crash-at-batch``: the run ends there, as if the job had died."""


def run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", default="single")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--samples", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--compile", default="")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--load", default=None, help="load this checkpoint before fitting")
    parser.add_argument("--model-seed", type=int, default=0)
    parser.add_argument("--kill-at-epoch", type=int, default=None)
    parser.add_argument("--checkpoint-every", type=int, default=None)
    parser.add_argument("--crash-at-batch", type=int, default=None,
                        help="every rank raises after this many batches (1-based, whole run); the "
                             "next '::' group still runs")
    parser.add_argument("--copy-run-dir-to", default=None, help="rank 0 copies --run-dir here first")
    parser.add_argument("--out", required=True)
    parser.add_argument("--expect-error", action="store_true",
                        help="a BigModelError is expected from fit: write its message to OUT.error")
    args = parser.parse_args(argv)

    from safetensors.torch import save_file

    from bigmodel.engine import Callback, Trainer
    from bigmodel.engine.dist_checkpoint import full_state_dict

    torch.set_num_threads(1)
    torch.manual_seed(args.model_seed)
    model = TinyTransformer(width=args.width, depth=args.depth, dropout_rate=args.dropout)
    x, y = make_data(args.samples)
    optimizer = {"adam": "adam", "sgd": lambda p: torch.optim.SGD(p, lr=args.lr, momentum=0.9)}[args.optimizer]
    trainer = Trainer(model, loss="cross_entropy", optimizer=optimizer, lr=args.lr, device="cpu",
                      precision=args.precision, grad_accum_steps=args.accum, seed=0, verbose=0,
                      run_dir=args.run_dir, strategy=args.strategy,
                      activation_checkpointing=args.activation_checkpointing,
                      compile=args.compile or False, checkpoint_every=args.checkpoint_every)
    out = Path(args.out)
    callbacks = []
    if args.kill_at_epoch is not None:
        marker = out.with_suffix(".killed")

        class KillOnce(Callback):
            def on_epoch_begin(self, epoch, logs=None):
                rank = int(os.environ.get("RANK", "0"))
                if epoch == args.kill_at_epoch and rank == 1 and not marker.exists():
                    marker.write_text(f"killed rank {rank} at epoch {epoch}\n")
                    os.kill(os.getpid(), signal.SIGKILL)

        callbacks.append(KillOnce())
    if args.crash_at_batch is not None:
        class Crash(Callback):
            def on_train_batch_end(self, batch, logs=None):
                if trainer.global_step == args.crash_at_batch:
                    raise _Crashed

        callbacks.append(Crash())
    if args.copy_run_dir_to and int(os.environ.get("RANK", "0")) == 0:
        import shutil

        shutil.copytree(args.run_dir, args.copy_run_dir_to)
    if args.copy_run_dir_to and trainer._dist is not None:
        trainer._dist.barrier()
    if args.load:
        trainer.load_checkpoint(args.load)
    if args.expect_error:
        from bigmodel.errors import BigModelError

        try:
            trainer.fit((x, y), epochs=args.epochs, batch_size=args.batch_size)
        except BigModelError as exc:
            out.with_suffix(".error").write_text(f"{type(exc).__name__}: {exc}\nsteps taken: "
                                                 f"{trainer.global_step}\n")
            return
        raise SystemExit("expected a BigModelError from fit")
    try:
        history = trainer.fit((x, y), epochs=args.epochs, batch_size=args.batch_size, shuffle=True,
                              callbacks=callbacks, resume=args.resume)
    except _Crashed:
        return
    state = full_state_dict(trainer.model)
    if int(os.environ.get("RANK", "0")) == 0:
        save_file({k: v.contiguous() for k, v in state.items()}, str(out))
        out.with_suffix(".json").write_text(json.dumps(
            {"loss": history.history.get("loss", []), "global_step": trainer.global_step,
             "epoch": trainer.epoch, "world_size": int(os.environ.get("WORLD_SIZE", "1"))}))


if __name__ == "__main__":
    sys.exit(main())
