"""``bigmodel predict ... --output FILE``: the predictions as a CSV or JSON file, one row per input.

The format follows the file's suffix (:data:`FORMATS`). CSV columns::

    input[, text], class, class_index, probability[, class_2, class_index_2, probability_2, ...]

(``text`` for text inputs; ``class_k`` ... for each of the top-k classes after the first); JSON::

    {"run": "<run dir>", "kind": "image|audio|text", "top_k": K,
     "predictions": [{"input": "...", "class": "...", "class_index": 3, "probability": 0.91,
                      "top_k": [{"class": ..., "class_index": ..., "probability": ...}, ...]}]}

The file is written atomically (a temporary file renamed into place): a failed command leaves
no partial file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bigmodel.errors import ConfigError
from bigmodel.utils.io import atomic_write_text

FORMATS = (".csv", ".json")


def check_output(path: str | Path) -> Path:
    """``path`` if predictions can be written there (checked before any work is done).

    Raises:
        ConfigError: a suffix other than :data:`FORMATS`, a missing parent folder, or a folder.
    """
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"--output {path}: the format follows the file's suffix; allowed: "
                          f"{', '.join(FORMATS)}; received {path.suffix or 'no suffix'!r}")
    if path.is_dir():
        raise ConfigError(f"--output {path} is a folder; give a file name ending in "
                          f"{' or '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise ConfigError(f"--output {path}: the folder {path.parent} does not exist")
    return path


def _rows(predictions: Sequence[Any], texts: Sequence[str] | None) -> list[dict[str, Any]]:
    rows = []
    for number, p in enumerate(predictions):
        row: dict[str, Any] = {"input": p.label}
        if texts is not None:
            row["text"] = texts[number]
        row.update({"class": p.classes[0][0], "class_index": int(p.classes[0][1]),
                    "probability": float(p.classes[0][2]),
                    "top_k": [{"class": name, "class_index": int(index),
                               "probability": float(prob)} for name, index, prob in p.classes]})
        rows.append(row)
    return rows


def write_predictions(path: str | Path, predictions: Sequence[Any], kind: str,
                      run_dir: str | Path, texts: Sequence[str] | None = None) -> Path:
    """Write ``predictions`` (:class:`bigmodel.recipes.runs.Prediction`: a label and its top-k
    ``(class name, class index, probability)``, best first) to ``path`` as its suffix says.

    Args:
        path: a ``.csv`` or ``.json`` file name.
        predictions: one per input, in input order.
        kind: "image", "audio" or "text".
        run_dir: the run that predicted (recorded in the JSON file).
        texts: for text inputs, the texts themselves (one per prediction), written beside the
            input's label.

    Raises:
        ConfigError: see :func:`check_output`; ``texts`` of another length than ``predictions``.
    """
    path = check_output(path)
    if texts is not None and len(texts) != len(predictions):
        raise ConfigError(f"write_predictions: {len(texts)} texts for {len(predictions)} "
                          "predictions")
    rows = _rows(predictions, texts)
    top_k = max((len(row["top_k"]) for row in rows), default=1)
    if path.suffix.lower() == ".json":
        text = json.dumps({"run": str(run_dir), "kind": kind, "top_k": top_k, "predictions": rows},
                          indent=2, ensure_ascii=False) + "\n"
    else:
        header = ["input", *(["text"] if texts is not None else []), "class", "class_index",
                  "probability"]
        for rank in range(2, top_k + 1):
            header += [f"class_{rank}", f"class_index_{rank}", f"probability_{rank}"]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            cells = [row["input"], *([row["text"]] if texts is not None else [])]
            for entry in row["top_k"]:
                cells += [entry["class"], entry["class_index"], f"{entry['probability']:.6f}"]
            writer.writerow(cells)
        text = out.getvalue()
    atomic_write_text(path, text)
    return path


__all__ = ["FORMATS", "check_output", "write_predictions"]
