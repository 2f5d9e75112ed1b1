"""Model compression: pruning, int8 quantization, distillation, and a comparison report.

* ``prune``: unstructured magnitude pruning (masks kept through training, sparsity schedule
  callback); ``structured``: remove whole channels / hidden units, found by probing the model;
  ``units``: recurrent hidden units and attention heads.
* ``quantize``: int8 for CPU through ONNX Runtime (static for CNNs, dynamic for Linear/LSTM and
  Transformers, attention fused into QAttention by ``attention_fusion``; small files: ``int8_graph``);
  ``qat``: quantization-aware training and weight-only int8/int4 (torchao).
* ``distill``: Hinton distillation, optional feature / attention-map matching.
* ``report``: size / latency / accuracy of each stage against the original.
"""

from bigmodel.compress.channels import ChannelHandler, count_macs, register_channel_handler
from bigmodel.compress.distill import Distiller, attention_map, distillation_loss
from bigmodel.compress.prune import (
    MagnitudePruner,
    SparsitySchedule,
    check_sparsity,
    iterative_prune,
    magnitude_prune,
    model_sparsity,
    sparse_size_bytes,
)
from bigmodel.compress.qat import QATHandle, prepare_qat, quantize_weight_only
from bigmodel.compress.quantize import Int8Model, load_int8, quantize_int8
from bigmodel.compress.report import StageResult, compare_speed, write_report
from bigmodel.compress.saving import load_any, read_any_spec, save_compressed
from bigmodel.compress.structured import (
    StructuredPruneResult,
    apply_structure,
    prune_to_widths,
    structured_prune,
)
from bigmodel.compress.units import head_scores, prune_heads

__all__ = [
    "ChannelHandler",
    "Distiller",
    "Int8Model",
    "MagnitudePruner",
    "QATHandle",
    "SparsitySchedule",
    "StageResult",
    "StructuredPruneResult",
    "apply_structure",
    "attention_map",
    "check_sparsity",
    "compare_speed",
    "count_macs",
    "distillation_loss",
    "head_scores",
    "iterative_prune",
    "load_any",
    "load_int8",
    "magnitude_prune",
    "model_sparsity",
    "prepare_qat",
    "prune_heads",
    "prune_to_widths",
    "quantize_int8",
    "quantize_weight_only",
    "read_any_spec",
    "register_channel_handler",
    "save_compressed",
    "sparse_size_bytes",
    "structured_prune",
    "write_report",
]
