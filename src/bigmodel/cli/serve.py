"""``bigmodel serve RUN_DIR [RUN_DIR ...]``: serve trained runs over HTTP (see
:mod:`bigmodel.serve`): Open Inference Protocol v2 endpoints, ``/v2/models/NAME/classify`` for
image/WAV files and texts, ``/metrics``, and a web page at ``/``."""

from __future__ import annotations

import argparse


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "serve", parents=parents, help="serve trained runs over HTTP (web page at /)",
        description="Serve run directories over HTTP with dynamic batching: Open Inference "
                    "Protocol v2 (/v2/models/NAME/infer), /v2/models/NAME/classify for files "
                    "and texts, /explain, /generate (language-model runs) and /translate "
                    "(seq2seq runs), Prometheus /metrics and a web page at /. Each model is "
                    "named after its run directory's folder (RUN/adapter: a LoRA run unmerged; "
                    "RUN/compressed/STAGE: a compressed stage).")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="directories written by 'bigmodel train' (or finetune/compress)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument("--max-batch", type=int, default=64,
                        help="most rows per forward pass (default 64)")
    parser.add_argument("--max-delay-ms", type=float, default=0.0,
                        help="longest wait for a batch to fill, in ms (default 0: a pass runs as "
                             "soon as the model is free, on every row that arrived during the "
                             "previous one)")
    parser.add_argument("--max-body-mb", type=float, default=8.0,
                        help="largest request body in MB (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--int8", action="store_true",
                        help="serve each run's int8 model (RUN_DIR/compressed/int8, written by "
                             "'bigmodel compress --quantize int8'; or pass that folder as RUN_DIR) "
                             "under the run's name, run by ONNX Runtime")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="server processes sharing the port, each loading every model "
                             "(default 1); /metrics sums them all")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigmodel.engine.resolve import resolve_device
    from bigmodel.errors import ConfigError

    try:
        from bigmodel.serve import serve
    except ModuleNotFoundError as exc:
        raise ConfigError(f"bigmodel serve needs the optional extra 'serve' ({exc.name} is "
                          "missing): pip install 'bigmodel[serve]'") from None

    if not args.max_body_mb > 0:
        raise ConfigError(f"--max-body-mb must be positive; received {args.max_body_mb}")
    serve(args.run_dirs, host=args.host, port=args.port, max_batch=args.max_batch,
          max_delay_ms=args.max_delay_ms, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
          device=str(resolve_device(args.device)), int8=args.int8, workers=args.workers)
    return 0
