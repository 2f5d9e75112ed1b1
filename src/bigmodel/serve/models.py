"""A served model: a run directory loaded once (model in eval mode, class names, input kind) with
the conversions from what a client sends (typed tensors, an image file, a text, a WAV file) to one
model input row, exactly as ``bigmodel predict`` converts its inputs.

Loading reuses the library's readers: :func:`bigmodel.models.load_model` /
:func:`~bigmodel.models.read_model_spec` (shapes checked before anything is built, no pickle),
:mod:`bigmodel.data.image_input` for image arrays, the run's tokenizer for texts (read by
:func:`bigmodel.recipes.text_data.load_vocabulary`, the loader ``evaluate`` and ``predict`` use), and
:mod:`bigmodel.data.audio` for clips. Every file name read from ``model.json`` is confined to the run
directory.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bigmodel.compress.saving import load_any, read_any_spec
from bigmodel.data.audio import fit_length, to_mono
from bigmodel.data.image_input import prepare_images, read_npy_bytes
from bigmodel.errors import BigModelError, ConfigError, DataError, DataFileError, ShapeError

KINDS = ("image", "text", "audio")
INT8_STAGE = Path("compressed") / "int8"  # where 'bigmodel compress --quantize int8' writes
MAX_IMAGE_PIXELS = 4096 * 4096  # decoded size cap: a small PNG can decode to gigabytes
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"


class UnsupportedMediaError(DataFileError):
    """An upload that is not the kind of file the model takes (HTTP 415)."""


class ServedModel:
    """One run directory behind the server.

    Args:
        run_dir: a directory written by ``bigmodel train`` / ``finetune``, or a stage of
            ``bigmodel compress`` (pruned: a PyTorch model; int8: an ONNX Runtime graph).
        name: the name clients use (default: :func:`model_name` of the folder).
        device: where the model runs (an int8 model runs on the CPU).

    Raises:
        CheckpointError: the run's model files are missing, corrupt or do not fit.
        DataFileError: a text run's vocabulary / tokenizer is missing or unreadable.
        ConfigError: ``name`` is not a valid model name.
    """

    def __init__(self, run_dir: str | Path, name: str | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.run_dir = Path(run_dir)
        self.name = name or model_name(self.run_dir)
        if not NAME_PATTERN.match(self.name):
            raise ConfigError(f"serve: model name {self.name!r} (from {run_dir}) must be letters, "
                              "digits, '.', '_' or '-' (at most 128)")
        spec = read_any_spec(self.run_dir)  # an int8 stage's too (no "config")
        self.metadata: dict[str, Any] = spec.get("metadata") or {}
        self.input_spec: dict[str, Any] = self.metadata.get("input") or {}
        # As `bigmodel predict` loads it; an int8 graph gets the torch thread count for its ONNX
        # Runtime session (OMP_NUM_THREADS / --threads bound both runtimes the same way).
        self.model = load_any(self.run_dir, device=device, threads=torch.get_num_threads())
        self.int8 = not isinstance(self.model, torch.nn.Module)
        self.device = torch.device("cpu") if self.int8 else next(self.model.parameters()).device
        kind = self.input_spec.get("kind", "image")
        self.kind = "text" if kind == "text" or (
            "finetuned_from" in self.metadata and self.input_spec.get("tokenizer")) else kind
        if self.kind not in KINDS:
            raise ConfigError(f"serve: {run_dir} takes {kind!r} inputs; the server takes "
                              f"{', '.join(KINDS)}")
        if self.kind == "image":
            config = spec.get("config") or {}
            size = config.get("image_size", 28)
            height, width = (size, size) if isinstance(size, int) else size
            self.channels = int(self.input_spec.get("channels", config.get("in_channels", 1)))
            self.height = int(self.input_spec.get("height", height))
            self.width = int(self.input_spec.get("width", width))
        elif self.kind == "text":
            from bigmodel.recipes.text_data import load_vocabulary, text_max_length

            self.tokenizer = load_vocabulary(self.run_dir, self.input_spec)
            self.max_length = text_max_length(self.input_spec)
            self.vocab_size = int(self.tokenizer.vocab_size)
        else:
            self.sample_rate = int(self.input_spec["sample_rate"])
            self.num_samples = int(self.input_spec["num_samples"])
        self.num_classes = int(self._probe_classes())
        names = self.metadata.get("class_names") or [str(i) for i in range(self.num_classes)]
        self.class_names = [str(n) for n in names]
        self.rows_independent = self._rows_independent()

    # -- description -------------------------------------------------------------------------
    @property
    def item_shape(self) -> list[int]:
        """Shape of one input row (``-1``: any length)."""
        if self.kind == "image":
            return [self.channels, self.height, self.width]
        if self.kind == "text":
            return [-1]
        return [self.num_samples]

    @property
    def item_dtype(self) -> torch.dtype:
        return torch.int64 if self.kind == "text" else torch.float32

    def describe(self) -> dict[str, Any]:
        """Open Inference Protocol model metadata."""
        datatype = "INT64" if self.kind == "text" else "FP32"
        inputs = [{"name": "input", "datatype": datatype, "shape": [-1, *self.item_shape]}]
        if self.kind == "text":
            inputs.append({"name": "text", "datatype": "BYTES", "shape": [-1]})
        outputs = [{"name": name, "datatype": "FP32", "shape": [-1, self.num_classes]}
                   for name in ("logits", "probabilities")]
        return {"name": self.name, "versions": ["1"],
                "platform": "onnxruntime" if self.int8 else "pytorch", "inputs": inputs,
                "outputs": outputs,
                "parameters": {"kind": self.kind, "class_names": self.class_names,
                               "precision": "int8" if self.int8 else "float32",
                               **({"sample_rate": self.sample_rate}
                                  if self.kind == "audio" else {})}}

    @property
    def pad_id(self) -> int:
        """A text run's padding id."""
        return int(self.tokenizer.pad_id)

    def tokens(self, row: torch.Tensor) -> list[str]:
        """Token strings of a text row (ids ``(L,)``), one per id."""
        itos = self.tokenizer.itos
        return [itos[int(i)] if 0 <= int(i) < len(itos) else "?" for i in row]

    # -- running -----------------------------------------------------------------------------
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K)`` float32 on CPU for a batch of rows, in eval mode (call from one
        thread at a time)."""
        if self.int8:  # ONNX Runtime; numpy in, numpy out
            return self.model(batch).float()
        with torch.inference_mode():
            return self.model(batch.to(self.device)).float().cpu()

    def _rows_independent(self) -> bool:
        """Whether a row's logits have the same bits alone (1-3 rows) as inside a batch of 8,
        probed once on random rows (kernels pick their code path by shape, not by value). ONNX
        Runtime's int8 kernels pass, so their batches need no padding; PyTorch's CPU
        matrix-vector paths for 1-3 rows do not (:mod:`bigmodel.serve.batcher` pads them)."""
        shape = [8 if d < 0 else d for d in self.item_shape]
        generator = torch.Generator().manual_seed(0)
        if self.kind == "text":  # token ids other than padding (models refuse inner padding)
            rows = torch.randint(0, self.vocab_size - 1, (8, *shape), generator=generator)
            rows += rows >= self.pad_id
        else:
            rows = torch.rand(8, *shape, generator=generator)
        try:
            together = self.forward(rows)
            return all(torch.equal(self.forward(rows[:count]), together[:count])
                       for count in (1, 2, 3))
        except Exception:  # noqa: BLE001 - input rules the probe misses: keep the padding
            return False

    def _probe_classes(self) -> int:
        classes = getattr(self.model, "num_classes", None)
        if isinstance(classes, int) and classes > 0:
            return classes
        example = torch.zeros(1, *[1 if d < 0 else d for d in self.item_shape],
                              dtype=self.item_dtype)
        return self.forward(example).shape[1]

    # -- conversions: what a client sends -> one row -------------------------------------------
    def image_rows(self, array: np.ndarray, source: str) -> torch.Tensor:
        """``(N, C, H, W)`` float32 rows from an image array in any layout ``predict`` takes."""
        return torch.from_numpy(prepare_images(array, self.channels, self.height, self.width,
                                               source=source))

    def image_from_file(self, data: bytes, source: str = "upload") -> torch.Tensor:
        """One or more image rows from an uploaded PNG (resized to the model's size, converted
        to its channels) or ``.npy`` file.

        Raises:
            UnsupportedMediaError: neither a PNG nor a ``.npy`` file, or an undecodable PNG.
            ShapeError / DataError / InputTypeError: an array ``predict`` would refuse.
        """
        if data.startswith(NPY_MAGIC):
            return self.image_rows(read_npy_bytes(data, source), source)
        if not data.startswith(PNG_MAGIC):
            raise UnsupportedMediaError(f"{source}: not an image: expected a PNG or a .npy file; "
                                        f"the file starts with {data[:8]!r}")
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise ShapeError(f"{source}: the image is {image.width}x{image.height} "
                                     f"pixels; at most {MAX_IMAGE_PIXELS} pixels are accepted")
                image = image.convert("L" if self.channels == 1 else "RGB")
                if image.size != (self.width, self.height):
                    image = image.resize((self.width, self.height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise UnsupportedMediaError(f"{source}: cannot decode the PNG image: {exc}") from None
        return self.image_rows(pixels, source)

    def encode_text(self, text: str, source: str = "text") -> torch.Tensor:
        """Token ids ``(L,)`` int64 of one text, encoded alone as ``bigmodel predict TEXT`` does.

        Raises:
            DataError: an empty text (or one with no known token).
        """
        if not isinstance(text, str):
            raise DataError(f"{source}: expected a text (string); received {type(text).__name__}")
        if not text.strip():
            raise DataError(f"{source}: the text to classify is empty")
        tokenizer = self.tokenizer
        try:
            ids = tokenizer.encode_batch([text], max_length=self.max_length)
            if tokenizer.kind == "wordpiece" and int((ids[0] != tokenizer.pad_id).sum()) <= 2:
                # [CLS] [SEP] only
                raise DataError(f"{source}: the text holds no token the model knows: {text!r}")
        except DataError as exc:
            raise DataError(f"{source}: {exc}") from None
        return torch.from_numpy(np.ascontiguousarray(ids[0], dtype=np.int64))

    def audio_from_wav(self, data: bytes, source: str = "upload") -> torch.Tensor:
        """One clip ``(S,)`` float32 from WAV bytes at the run's sample rate (no resampling: a
        client sends what the model was trained on), padded like training clips.

        Raises:
            UnsupportedMediaError: not a WAV file.
            DataError: the wrong sample rate, an empty or silent clip, or one longer than the
                training clips.
        """
        from scipy.io import wavfile

        if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
            raise UnsupportedMediaError(f"{source}: not a WAV file: expected a RIFF/WAVE header, "
                                        f"found {data[:12]!r}")
        try:
            rate, samples = wavfile.read(io.BytesIO(data), mmap=False)
        except Exception as exc:  # noqa: BLE001 - scipy fails on bad bytes in many ways
            raise UnsupportedMediaError(f"{source}: cannot decode the WAV file ({exc})") from None
        if int(rate) != self.sample_rate:
            raise DataError(f"{source}: the WAV file is sampled at {rate} Hz; model "
                            f"{self.name!r} takes {self.sample_rate} Hz clips (resample it)")
        if samples.dtype == np.uint8:  # as bigmodel.data.audio.read_wav: 128 is zero
            samples = (samples.astype(np.float32) - 128.0) / 128.0
        elif np.issubdtype(samples.dtype, np.integer):
            samples = samples.astype(np.float64) / float(2 ** (8 * samples.dtype.itemsize - 1))
        samples = to_mono(np.asarray(samples, dtype=np.float32))
        if len(samples) == 0 or not np.isfinite(samples).all() or np.abs(samples).max() < 1e-4:
            raise DataError(f"{source}: the clip is empty, silent or holds NaN/Inf samples")
        return torch.from_numpy(fit_length(samples, self.num_samples,
                                           self.input_spec.get("long_clips", "error"),
                                           source=source, sample_rate=self.sample_rate))


def model_name(path: str | Path) -> str:
    """The name a served folder gets: its folder name, or ``RUN-STAGE`` for a stage of
    ``bigmodel compress`` (``RUN/compressed/int8`` -> ``RUN-int8``: stages of different runs
    would all be called ``int8``)."""
    path = Path(path).resolve()
    if path.parent.name == "compressed" and path.parent.parent.name:
        return f"{path.parent.parent.name}-{path.name}"
    if path.name == "adapter" and (path / "adapter.json").is_file():  # RUN/adapter: RUN-adapter
        return f"{path.parent.name}-adapter"
    return path.name


def int8_stage(run_dir: str | Path) -> Path:
    """The int8 model of a run (``serve --int8``): ``RUN/compressed/int8``, or ``run_dir`` itself
    when it is an int8 stage already.

    Raises:
        ConfigError: the run has no int8 stage (names the command that writes it), or
            ``run_dir`` is another compressed stage.
    """
    from bigmodel.compress.quantize import INT8_FILE
    from bigmodel.models.model_files import read_model_document

    run_dir = Path(run_dir)
    for candidate in (run_dir, run_dir / INT8_STAGE):
        if (candidate / INT8_FILE.json_name).is_file():
            try:
                read_model_document(candidate, INT8_FILE)
            except BigModelError:
                continue
            return candidate
    raise ConfigError(f"serve --int8: {run_dir} holds no int8 model (looked for "
                      f"{run_dir / INT8_STAGE}); write it with 'bigmodel compress {run_dir} "
                      "--quantize int8', or serve the run without --int8")


__all__ = ["INT8_STAGE", "KINDS", "NAME_PATTERN", "ServedModel", "UnsupportedMediaError",
           "int8_stage", "model_name"]
