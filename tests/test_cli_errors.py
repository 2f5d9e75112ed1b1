"""The ``bigmodel`` command never prints a traceback unless ``--debug`` (issue 18): a BigModelError is
one line and exit 2, an OSError/MemoryError exit 1, anything else is reported as an unexpected error
(exit 1) that points to ``--debug``. Library errors are turned into BigModelErrors where they arise:
disk full in any atomic write, ONNX Runtime refusing a file or inputs. Torchrun workers end through
``os._exit`` with the command's exit code and their output flushed."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError

from bigmodel.cli import main as cli_main
from bigmodel.errors import CheckpointError, ConfigError, Preempted, ShapeError
from bigmodel.utils.io import atomic_path

DISK_FULL = SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                            "message: \"No space left on device\" }) (os error 28)")


def with_command(monkeypatch, action):
    """Register a one-off ``boom`` subcommand that runs ``action()``."""
    def add_parser(subparsers, parents):
        parser = subparsers.add_parser("boom", parents=parents)
        parser.set_defaults(func=lambda args: action())

    monkeypatch.setattr(cli_main, "_command_modules",
                        lambda: [types.SimpleNamespace(add_parser=add_parser)])


def raise_(error):
    def action():
        raise error
    return action


@pytest.mark.parametrize(("error", "code", "expected"), [
    (ConfigError("bad key 'x'"), 2, "error: bad key 'x'"),
    (Preempted("stopped at step 3", 15), 143, "error: stopped at step 3"),
    (PermissionError(13, "Permission denied", "/run/x"), 1,
     "error: PermissionError: [Errno 13] Permission denied: '/run/x' (rerun with --debug"),
    (KeyError("weights"), 1, "error: unexpected error KeyError: 'weights'\nThis is likely a bug"),
    (DISK_FULL, 1, "unexpected error SafetensorError: Error while serializing"),
])
def test_errors_print_one_message_without_a_traceback(monkeypatch, capsys, error, code, expected):
    with_command(monkeypatch, raise_(error))
    assert cli_main.main(["boom"]) == code
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err
    if code == 1 and "unexpected" in expected:
        assert "rerun with --debug" in err


def test_debug_shows_the_real_exception(monkeypatch):
    with_command(monkeypatch, raise_(KeyError("weights")))
    with pytest.raises(KeyError):
        cli_main.main(["--debug", "boom"])


def test_disk_full_while_saving_a_model_is_a_checkpoint_error_and_leaves_nothing(
        monkeypatch, tmp_path, capsys):
    import safetensors.torch

    from bigmodel.models import create_model, save_model

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)  # part of the file made it, then the disk filled
        raise DISK_FULL

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    model = create_model("seed-cnn")
    with_command(monkeypatch, lambda: save_model(model, tmp_path / "run"))
    assert cli_main.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert f"error: No space left on the disk holding {tmp_path / 'run'} while writing " \
           "model.safetensors (100 bytes written before it failed" in err
    assert "Traceback" not in err
    assert list((tmp_path / "run").iterdir()) == []  # no temporary file, no model.json


def test_atomic_write_errors_name_the_file(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(CheckpointError, match="Cannot write .*file/out.json: "):
        with atomic_path(blocked / "out.json") as tmp:
            tmp.write_text("{}")
    with pytest.raises(CheckpointError, match="No space left") as raised:
        with atomic_path(tmp_path / "w.safetensors"):
            raise DISK_FULL
    assert raised.value.errno == 28  # checkpoint writers add the bytes they need from this
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_onnx_runtime_errors_become_bigmodel_errors(tmp_path):
    pytest.importorskip("onnxruntime")
    from bigmodel.export.onnx import ExportError, onnx_session, run_session

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(CheckpointError, match=f"ONNX Runtime cannot load '{bad}': the file is corrupt"):
        onnx_session(bad)
    with pytest.raises(ExportError, match="ONNX Runtime cannot load the exported graph"):
        onnx_session(b"junk")
    from onnx import TensorProto, helper, numpy_helper, save

    weight = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "linear",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [weight])
    path = tmp_path / "linear.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    session = onnx_session(path)
    assert run_session(session, np.ones((1, 3), np.float32))[0].shape == (1, 2)
    with pytest.raises(ShapeError, match=r"inputs \{.*\(1, 5\)\}"):
        run_session(session, np.ones((1, 5), np.float32))


def test_a_torchrun_worker_exits_with_the_command_code_and_flushed_output(tmp_path):
    env = {**os.environ, "WORLD_SIZE": "1", "RANK": "0", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "bigmodel", "predict", str(tmp_path / "absent"),
                           str(tmp_path / "x.npy")], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_bigmodel_warnings_print_as_one_line_and_others_keep_their_format():
    from bigmodel.engine import run_lock

    own = cli_main.compact_warning(UserWarning("took over the lock"), UserWarning,
                                   run_lock.__file__, 187, "lock = acquire(run_dir)")
    assert own == "warning: took over the lock\n"
    other = cli_main.compact_warning(UserWarning("x"), UserWarning, "/elsewhere/lib.py", 3, "y = 1")
    assert "lib.py:3" in other and "UserWarning" in other
