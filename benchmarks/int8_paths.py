"""Which CPU int8 path is fast here: PyTorch's own kernels, torchao, or ONNX Runtime.

    python benchmarks/int8_paths.py [--threads 1] [--rounds 7] [--cases vit] [--inductor]

For five model shapes (the seed CNN, an MLP 784-512-512-10, an LSTM 2x256 + Linear, the seed LSTM
2x128 over image rows, the Fashion-MNIST ViT; random weights: speed does not depend on training;
``--cases`` picks some) every available path is timed interleaved against the
fp32 PyTorch model in the same process (batch-1 latency, batch-256 throughput, medians), and its
max abs output difference is shown. The result decided ``bigmodel.compress.quantize``'s choice
(docs/compress.md).

``--inductor`` (ViT cases; needs a C++ compiler) adds PyTorch's compiled paths: the fp32 model
under ``torch.compile`` (the compiler's own share) and static int8 from the PT2E flow with
torchao's ``X86InductorQuantizer`` (calibrated on 64 random images; the patch convolution stays
fp32, because the quantized convolution fails to compile with a dynamic batch dimension in this
torch), compiled with a dynamic batch dimension and weight freezing. Not a saved-file path: a
compiled model lives in its process.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import logging
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from bigmodel.compress.report import compare_speed
from bigmodel.export.onnx import export_onnx, onnx_session, quiet_exporter, run_session
from bigmodel.models import create_model


class LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 128)
        self.lstm = nn.LSTM(128, 256, num_layers=2, batch_first=True)
        self.fc = nn.Linear(256, 10)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.fc(out[:, -1])


def ort_paths(model: nn.Module, example, calibration, tmp: Path, threads: int,
              kind: str = "") -> dict:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    from bigmodel.compress import quantize_int8

    fp32 = tmp / "fp32.onnx"
    export_onnx(model, fp32, example)
    files = {"ONNX Runtime fp32": fp32}
    products = {}
    if kind.startswith("vit"):  # dynamic, attention fused into QAttention; the patch conv computes fp32
        products["ORT dynamic int8 (quantize_int8)"] = quantize_int8(
            model, example, mode="dynamic", keep_fp32=["patch_embedding"])
    elif calibration is None:  # no convolutions: bigmodel picks dynamic int8
        products["ORT dynamic int8 (quantize_int8)"] = quantize_int8(model, example, mode="dynamic")
    else:
        products["ORT static int8 QDQ (quantize_int8)"] = quantize_int8(
            model, example, calibration=calibration, mode="static")
    with quiet_exporter():
        quantize_dynamic(str(fp32), str(tmp / "dyn.onnx"), weight_type=QuantType.QInt8)
        files["ORT dynamic int8 (defaults)"] = tmp / "dyn.onnx"
        if kind.startswith("vit"):  # static QDQ int8 for the MatMuls and the convolution, calibrated
            name = onnx_session(fp32).get_inputs()[0].name
            batches = iter([{name: torch.rand(32, 1, 28, 28).numpy()} for _ in range(4)])

            class VitReader(CalibrationDataReader):
                def get_next(self, batches=batches):
                    return next(batches, None)

            quantize_static(str(fp32), str(tmp / "static_vit.onnx"), VitReader(),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["MatMul", "Conv"])
            files["ORT static int8 QDQ MatMul/Conv (defaults)"] = tmp / "static_vit.onnx"
        if calibration is not None:
            name = onnx_session(fp32).get_inputs()[0].name
            for fmt, label in ((QuantFormat.QOperator, "QOperator"),):
                batches = iter([{name: calibration[i: i + 16].numpy()}
                                for i in range(0, len(calibration), 16)])

                class Reader(CalibrationDataReader):
                    def get_next(self, batches=batches):
                        return next(batches, None)

                path = tmp / f"static_{label}.onnx"
                quantize_static(str(fp32), str(path), Reader(), quant_format=fmt, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
                files[f"ORT static int8 {label} (defaults)"] = path
    paths = {}
    for label, path in files.items():
        session = onnx_session(path, threads=threads)
        paths[label] = lambda x, s=session: torch.from_numpy(run_session(s, x)[0])
    for label, int8 in products.items():
        int8.set_threads(threads)
        paths[label] = int8
    return paths


def inductor_paths(model: nn.Module, example) -> dict:
    """fp32 and PT2E static int8 under ``torch.compile`` (inductor), dynamic batch dimension."""
    import torch._inductor.config as inductor_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    inductor_config.freezing = True  # constant-fold the weights (packs the int8 ones once)
    batch = torch.export.Dim("batch", min=1, max=4096)
    exported = torch.export.export(model, (example.repeat(4, *[1] * (example.dim() - 1)),),
                                   dynamic_shapes=({0: batch},)).module()
    quantizer = X86InductorQuantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config())
    quantizer.set_module_type_qconfig(nn.Conv2d, None)
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        prepared(torch.rand(64, *example.shape[1:]))
    quantized = convert_pt2e(prepared)
    return {"PyTorch fp32, torch.compile": torch.compile(model, dynamic=True),
            "PyTorch PT2E int8, torch.compile": torch.compile(quantized, dynamic=True)}


def torch_paths(model: nn.Module, kind: str, calibration) -> dict:
    paths = {}
    dynamic_types = {nn.Linear, nn.LSTM} if kind != "cnn" else {nn.Linear}
    paths["PyTorch dynamic int8"] = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(model), dynamic_types, dtype=torch.qint8)
    if kind == "cnn":
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        class Traceable(nn.Module):  # the seed CNN without its input-layout checks
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                m = self.m
                x = torch.max_pool2d(torch.relu(m.conv1(x)), 2)
                x = torch.max_pool2d(torch.relu(m.conv2(x)), 2)
                x = torch.relu(m.conv3(x)).permute(0, 2, 3, 1).flatten(1)
                return m.classifier(torch.relu(m.fc(x)))

        prepared = prepare_fx(Traceable(copy.deepcopy(model)), get_default_qconfig_mapping("x86"),
                              (calibration[:1],))
        prepared(calibration)
        paths["PyTorch FX static int8"] = convert_fx(prepared)
    elif kind in ("mlp", "lstm"):  # torchao: slower than fp32 on both (see BENCHMARKS.md)
        try:
            with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from torchao.quantization import (
                    Int8DynamicActivationInt8WeightConfig,
                    Int8WeightOnlyConfig,
                    quantize_,
                )
            for label, config in (("torchao int8 dynamic (a8w8)", Int8DynamicActivationInt8WeightConfig()),
                                  ("torchao int8 weight-only", Int8WeightOnlyConfig())):
                candidate = copy.deepcopy(model)
                quantize_(candidate, config)
                paths[label] = candidate
        except ImportError:
            pass
    return paths


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "int8_paths.json"))
    parser.add_argument("--inductor", action="store_true",
                        help="ViT cases: also torch.compile fp32 and PT2E int8 (C++ compiler)")
    parser.add_argument("--cases", default=None,
                        help="comma-separated subset: cnn, mlp, lstm, seed-rnn, vit, vit-128, vit-256 "
                             "(default: all)")
    args = parser.parse_args(argv)
    logging.getLogger("torchao").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = {
        "seed CNN": ("cnn", create_model("seed-cnn").eval(), torch.rand(1, 1, 28, 28),
                     torch.rand(256, 1, 28, 28), torch.rand(64, 1, 28, 28)),
        "MLP 784-512-512-10": ("mlp", nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
            nn.Linear(512, 10)).eval(), torch.rand(1, 784), torch.rand(256, 784), None),
        "LSTM 2x256": ("lstm", LSTMNet().eval(), torch.randint(0, 1000, (1, 50)),
                       torch.randint(0, 1000, (256, 50)), None),
        "seed LSTM 2x128": ("seed-rnn", create_model("seed-rnn").eval(), torch.rand(1, 1, 28, 28),
                            torch.rand(256, 1, 28, 28), None),
        "ViT d=64 x4": ("vit", create_model("vit", dropout=0.0).eval(), torch.rand(1, 1, 28, 28),
                        torch.rand(256, 1, 28, 28), None),
        # wider ViTs (same 50 tokens, 4 layers): the fp32 attention core (score products and
        # softmax, which int8 weights do not touch) is a smaller share of the time
        "ViT d=128 x4": ("vit-128", create_model("vit", d_model=128, num_heads=4, dff=256,
                                                 dropout=0.0).eval(),
                         torch.rand(1, 1, 28, 28), torch.rand(256, 1, 28, 28), None),
        "ViT d=256 x4": ("vit-256", create_model("vit", d_model=256, num_heads=8, dff=512,
                                                 dropout=0.0).eval(),
                         torch.rand(1, 1, 28, 28), torch.rand(256, 1, 28, 28), None),
    }
    if args.cases:
        wanted = set(args.cases.split(","))
        cases = {k: v for k, v in cases.items() if v[0] in wanted}
    results = {}
    for case, (kind, model, one, batch, calibration) in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            predictors = {"PyTorch fp32": model, **torch_paths(model, kind, calibration),
                          **ort_paths(model, one, calibration, Path(tmp), args.threads, kind)}
            if args.inductor and kind.startswith("vit"):
                predictors.update(inductor_paths(model, one))
            with torch.inference_mode():
                reference = model(batch)
                diffs = {k: float((f(batch) - reference).abs().max()) for k, f in predictors.items()}
            speeds = compare_speed(predictors, one, batch, rounds=args.rounds)
        base_latency, base_throughput = speeds["PyTorch fp32"]
        results[case] = {k: {"latency_ms": lat, "throughput": thr,
                             "speedup_b1": base_latency / lat, "speedup_b256": thr / base_throughput,
                             "max_abs_diff": diffs[k]} for k, (lat, thr) in speeds.items()}
        print(f"\n{case} ({args.threads} thread(s)); speed-up vs PyTorch fp32, batch 1 / batch 256")
        for k, row in results[case].items():
            print(f"  {k:38s} {row['latency_ms']:8.3f} ms  {row['throughput']:10,.0f} img/s   "
                  f"{row['speedup_b1']:5.2f}x / {row['speedup_b256']:5.2f}x   "
                  f"diff {row['max_abs_diff']:.2g}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
