"""Model export: ONNX (checked under ONNX Runtime) and safetensors + JSON model files."""

from bigmodel.export.onnx import ExportError, OnnxExportResult, export_onnx, onnx_session

__all__ = ["ExportError", "OnnxExportResult", "export_onnx", "onnx_session"]
