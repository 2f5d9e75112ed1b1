"""Run-directory artifacts: curves and confusion-matrix PNGs, the confusion matrix, report.md."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from bigmodel.engine.report import (
    confusion_matrix,
    format_duration,
    plot_confusion_matrix,
    plot_training_curves,
    read_metrics_csv,
    render_report,
    write_report,
)
from bigmodel.errors import DataError, DataFileError, ShapeError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; fails unless the file starts like a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    assert data.endswith(b"IEND\xaeB`\x82")  # complete file
    return struct.unpack(">II", data[16:24])


def write_csv(path, text):
    path.write_text(text)
    return path


def test_training_curves_png(tmp_path):
    csv = write_csv(tmp_path / "metrics.csv",
                    "epoch,accuracy,loss,val_accuracy,val_loss,lr\n"
                    "0,0.5,1.2,0.6,1.0,0.001\n1,0.7,0.8,0.72,0.75,0.0005\n")
    out = plot_training_curves(csv, tmp_path / "curves.png", title="t")
    width, height = png_size(out)
    assert width > 2 * height  # three panels side by side: loss, accuracy, lr
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_training_curves_without_validation_or_epoch_column(tmp_path):
    csv = write_csv(tmp_path / "m.csv", "loss,accuracy\n1.0,0.4\n0.5,0.8\n0.4,0.9\n")
    png_size(plot_training_curves(csv, tmp_path / "c.png"))
    # Keras's CSVLogger writes NA for validation columns of a run without validation data.
    csv = write_csv(tmp_path / "na.csv", "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.0,NA,NA\n")
    assert np.isnan(read_metrics_csv(csv)["val_loss"][0])
    png_size(plot_training_curves(csv, tmp_path / "na.png"))


def test_metrics_csv_errors(tmp_path):
    with pytest.raises(DataFileError, match="not found"):
        plot_training_curves(tmp_path / "none.csv", tmp_path / "c.png")
    with pytest.raises(DataFileError, match="no epochs"):
        plot_training_curves(write_csv(tmp_path / "h.csv", "epoch,loss\n"), tmp_path / "c.png")
    with pytest.raises(DataFileError, match=r"line 2: column 'loss' holds 'abc'"):
        read_metrics_csv(write_csv(tmp_path / "b.csv", "epoch,loss\n0,abc\n"))
    assert not (tmp_path / "c.png").exists()


def test_confusion_matrix_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    expected = np.zeros((5, 5), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 5), expected)
    assert confusion_matrix(y_true, y_pred).shape == (4, 4)


def test_confusion_matrix_errors():
    with pytest.raises(ShapeError):
        confusion_matrix([0, 1], [0])
    with pytest.raises(DataError, match=r"0\.\.2"):
        confusion_matrix([0, 3], [0, 1], num_classes=3)
    with pytest.raises(DataError, match="integer"):
        confusion_matrix([0.5], [1.0])


def test_confusion_matrix_png(tmp_path):
    matrix = np.array([[5, 1, 0], [0, 4, 2], [1, 0, 7]])
    png_size(plot_confusion_matrix(matrix, tmp_path / "cm.png", ["cat", "dog", "eel"]))
    with pytest.raises(ShapeError, match="class names"):
        plot_confusion_matrix(matrix, tmp_path / "x.png", ["a"])
    with pytest.raises(ShapeError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "x.png")


def test_report_markdown(tmp_path):
    matrix = np.array([[8, 2], [1, 9]])
    text = render_report(
        "Run x", {"model": "seed-cnn (93,322 parameters)"},
        {"train": {"loss": 0.5, "accuracy": 0.8}, "test": {"loss": 0.25, "accuracy": 0.85},
         "validation": {"loss": None, "accuracy": None}},
        matrix, ["shirt", "shoe"], {"Training curves": "training_curves.png"}, "train: {}\n",
        ["a note"])
    assert text.startswith("# Run x\n")
    assert "| test | 0.2500 | 85.00% |" in text
    assert "| validation | – | – |" in text
    assert "| shirt | 80.00% | 10 | shoe (2) |" in text
    assert "![Training curves](training_curves.png)" in text
    assert "```yaml\ntrain: {}\n```" in text and "- a note" in text
    path = write_report(tmp_path / "report.md", "T", {}, {})
    assert path.read_text().startswith("# T")


def test_format_duration():
    assert format_duration(5.25) == "5.2s"
    assert format_duration(75.2) == "1m 15s"
    assert format_duration(3725) == "1h 2m 5s"
