"""Where does a ``keras.Sequential.fit`` step spend its time beyond the hand-written loop?

    .venv/bin/python benchmarks/profile_fit_overhead.py [--threads 1] [--iters 200]

Per-step costs, each measured against its hand-written counterpart on the same batch (seed CNN,
batch 32), interleaved and repeated, medians in microseconds (CPU time of the thread when ``--threads 1``,
so that other processes on the machine hardly disturb it; wall time otherwise):

- ``model_fwd_bwd``: forward + backward through the Keras layers (``Sequential.call`` ->
  ``Layer.__call__`` -> ``Layer.forward`` shape checks -> ``layer.call`` with NHWC<->NCHW permutes;
  the output layer in logits mode, as during ``fit``) vs the plain ``nn.Module``;
- ``permutes_fwd_bwd``: the plain module rewritten to keep NHWC between layers with the same
  permutes the Keras layers do (10 instead of 2), vs the plain module: the cost of the permutes
  alone (their autograd nodes), without any Keras Python code;
- ``model_dispatch``: the same forward on a 1-image batch under ``no_grad``, where the kernels are
  cheap and the Python dispatch of the layer stack dominates;
- ``loss``: ``SparseCategoricalCrossentropy`` (logits form, as ``fit`` uses it; checks the label
  range with ``.min()``/``.max()`` every batch) vs ``F.cross_entropy``, forward + backward;
- ``label_check``: that range check alone;
- ``metric_update``: the accuracy metric's ``update`` as ``fit`` calls it (engine/metrics.py);
- ``batching``: drawing a shuffled batch from ``ArrayBatches`` vs ``index_select``;
- ``optimizer_step``: the trainer's optimizer step (Keras ``adam``: torch's fused Adam) vs the
  hand-written loop's ``torch.optim.Adam`` (torch's default, a per-tensor loop on CPU);
- ``step``: the whole step, ``Trainer`` inner loop body vs the minimal loop body.

A cProfile of one ``fit`` epoch (top functions by own time) is stored too. Output:
``benchmarks/out/profile_fit_overhead.json`` and a Markdown table.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
import fit_throughput  # noqa: E402


class NHWCPermuted(torch.nn.Module):
    """``TorchSeedCNN``'s layers, but NHWC between layers as the Keras layers keep it: every conv
    and pool permutes to NCHW and back (views), the activation runs on the NHWC view."""

    def __init__(self, base: common.TorchSeedCNN) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.base

        def conv(layer: torch.nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
            return F.relu(layer(t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))

        def pool(t: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(t.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)

        x = pool(conv(b.conv1, x))
        x = pool(conv(b.conv2, x))
        x = conv(b.conv3, x).reshape(x.shape[0], -1)
        return b.fc2(F.relu(b.fc1(x)))


def _clock() -> Callable[[], float]:
    """With one torch thread, the CPU time of this thread: time spent descheduled (other processes
    on the machine) does not count, which makes small differences measurable on a busy machine.
    With more threads, wall time (the pool's other threads would not be counted)."""
    return time.thread_time if torch.get_num_threads() == 1 else time.perf_counter


def _time_pair(a: Callable[[], Any], b: Callable[[], Any], iters: int, repeats: int) -> tuple[float, float]:
    """Median microseconds per call of ``a`` and ``b``, interleaved blocks of ``iters`` calls."""
    clock = _clock()
    ta, tb = [], []
    for rep in range(repeats):
        for which in ((a, ta), (b, tb)) if rep % 2 == 0 else ((b, tb), (a, ta)):
            fn, sink = which
            t0 = clock()
            for _ in range(iters):
                fn()
            sink.append((clock() - t0) / iters * 1e6)
    return common.median(ta), common.median(tb)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iters", type=int, default=100, help="calls per timed block")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per side")
    p.add_argument("--big-iters", type=int, default=5,
                   help="calls per timed block for the whole-step and model rows")
    p.add_argument("--big-repeats", type=int, default=41,
                   help="timed blocks per side for the whole-step and model rows")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--samples", type=int, default=6400, help="images for the cProfile'd epoch")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--out", default=str(common.DEFAULT_OUT))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    common.set_threads(args.threads)
    from bigmodel.data.batching import ArrayBatches, batch_size_of

    (x_train, y_train), _ = common.load_fashion(args.data)
    n = min(args.samples, len(x_train))
    x = (x_train[:n].astype(np.float32) / 255.0)[..., None]
    y = y_train[:n].astype(np.int64)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    bs = args.batch_size
    xb, yb = x_t[:bs].clone(), y_t[:bs].clone()

    km = fit_throughput._keras_model(0)
    km.fit(x[:bs * 20], y[:bs * 20], batch_size=bs, epochs=1, verbose=0)  # sets up the Trainer
    trainer = km._trainer
    tm, topt = fit_throughput._torch_model(km)
    kopt = trainer.optimizer
    metric = trainer.metrics[0]
    keras_loss = trainer.loss  # loss_fn(outputs, targets) as fit calls it

    nhwc = NHWCPermuted(tm)

    def nhwc_fwd_bwd() -> None:
        F.cross_entropy(nhwc(xb), yb).backward()

    def keras_fwd_bwd() -> None:
        km._logits_mode = True
        out = km(xb, training=True)
        km._logits_mode = False
        F.cross_entropy(out, yb).backward()

    def torch_fwd_bwd() -> None:
        F.cross_entropy(tm(xb), yb).backward()

    x1 = xb[:1].clone()

    def keras_dispatch() -> None:
        with torch.no_grad():
            km._logits_mode = True
            km(x1, training=True)
            km._logits_mode = False

    def torch_dispatch() -> None:
        with torch.no_grad():
            tm(x1)

    logits = torch.randn(bs, 10, requires_grad=True)

    def keras_loss_step() -> None:
        keras_loss(logits, yb).backward()

    def torch_loss_step() -> None:
        F.cross_entropy(logits, yb).backward()

    from bigmodel.keras.losses import _check_sparse_labels

    def label_check() -> None:
        _check_sparse_labels("sparse_categorical_crossentropy", yb, 10)

    def nothing() -> None:
        pass

    detached = logits.detach()

    def metric_update() -> None:
        metric.update(detached, yb)

    batches = ArrayBatches((x_t, y_t), bs, shuffle=True, generator=torch.Generator().manual_seed(0))
    state: dict[str, Any] = {"it": iter(batches)}

    def array_batch() -> None:
        try:
            next(state["it"])
        except StopIteration:
            state["it"] = iter(batches)
            next(state["it"])

    order = torch.randperm(n)
    pos = {"i": 0}

    def manual_batch() -> None:
        i = pos["i"]
        index = order[i:i + bs]
        x_t.index_select(0, index), y_t.index_select(0, index)
        pos["i"] = (i + bs) % (n - bs)

    # The whole step: Trainer's loop body (fit's _forward, backward, bookkeeping, metric,
    # optimizer step) vs the minimal loop body; same batch each time.
    pending: list[torch.Tensor] = []
    sizes: list[int] = []

    def keras_step() -> None:
        km._logits_mode = True
        outputs, loss = trainer._forward(xb, yb, None)
        km._logits_mode = False
        loss.backward()
        pending.append(loss.detach())
        sizes.append(batch_size_of(yb))
        metric.update(outputs.detach(), yb)
        trainer._optimizer_step()
        time.perf_counter()
        if len(pending) > 10000:
            pending.clear(), sizes.clear()

    def torch_step() -> None:
        topt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(tm(xb), yb)
        loss.backward()
        topt.step()

    k_params = [p for p in km.parameters() if p.requires_grad]
    t_params = list(tm.parameters())
    k_grads = [torch.randn_like(p) * 1e-3 for p in k_params]
    t_grads = [torch.randn_like(p) * 1e-3 for p in t_params]

    def keras_optimizer_step() -> None:  # the trainer's step (it zeroes the gradients after)
        for p, g in zip(k_params, k_grads):
            p.grad = g
        trainer._optimizer_step()

    def torch_optimizer_step() -> None:
        for p, g in zip(t_params, t_grads):
            p.grad = g
        topt.step()
        topt.zero_grad(set_to_none=True)

    km.train()
    tm.train()
    rows = {}
    it, rp = args.iters, args.repeats
    for name, a, b in [
        ("step", keras_step, torch_step),
        ("model_fwd_bwd", keras_fwd_bwd, torch_fwd_bwd),
        ("permutes_fwd_bwd", nhwc_fwd_bwd, torch_fwd_bwd),
        ("model_dispatch", keras_dispatch, torch_dispatch),
        ("loss", keras_loss_step, torch_loss_step),
        ("label_check", label_check, nothing),
        ("metric_update", metric_update, nothing),
        ("batching", array_batch, manual_batch),
        ("optimizer_step", keras_optimizer_step, torch_optimizer_step),
    ]:
        for _ in range(3):  # warm-up
            a(), b()
        big = name in ("step", "model_fwd_bwd", "permutes_fwd_bwd")
        ka, tb = _time_pair(a, b, args.big_iters if big else it, args.big_repeats if big else rp)
        rows[name] = {"keras_us": ka, "reference_us": tb, "overhead_us": ka - tb}
        common.log(f"  {name}: keras {ka:.1f} us, reference {tb:.1f} us")
    kopt.zero_grad(set_to_none=True)

    # cProfile of one fit epoch on n images.
    prof = cProfile.Profile()
    prof.enable()
    km.fit(x, y, batch_size=bs, epochs=1, verbose=0)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)

    step_ref = rows["step"]["reference_us"]
    result = {
        "benchmark": "profile_fit_overhead",
        "date": common.today(),
        "machine": common.machine_info(),
        "command": "benchmarks/profile_fit_overhead.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "clock": "thread CPU time" if torch.get_num_threads() == 1 else "wall time",
        "config": {"batch_size": bs, "iters": it, "repeats": rp, "big_iters": args.big_iters,
                   "big_repeats": args.big_repeats, "profiled_samples": n},
        "per_step_us": rows,
        "overhead_share_of_reference_step": {k: v["overhead_us"] / step_ref for k, v in rows.items()},
        "cprofile_top": buf.getvalue().splitlines()[:45],
    }
    path = common.write_json(result, args.out, "profile_fit_overhead.json")
    table = [[k, v["keras_us"], v["reference_us"], v["overhead_us"],
              f"{100 * v['overhead_us'] / step_ref:+.1f}%"] for k, v in rows.items()]
    print(common.markdown_table(["per step", "bigmodel µs", "hand-written µs", "overhead µs",
                                 "of a reference step"], table))
    print(f"JSON: {path}")
    return result


if __name__ == "__main__":
    main()
