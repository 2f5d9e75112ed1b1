"""Multipart form bodies parsed in memory (python-multipart's streaming parser over the body the
server has already read and bounded): Starlette's own form parser spools uploads over 1 MB to
temporary files, and the server writes nothing outside its run directories."""

from __future__ import annotations

from python_multipart.multipart import MultipartParser, parse_options_header

from bigmodel.serve.protocol import RequestError

MAX_PARTS = 8


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """``{field name: (file name or None, bytes)}`` of a ``multipart/form-data`` body (the first
    part of each name).

    Raises:
        RequestError: no boundary, a malformed body, more than ``MAX_PARTS`` parts, or a part
            without a name.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise RequestError("multipart form: the Content-Type names no boundary")
    parts: list[tuple[dict[bytes, bytes], bytes]] = []
    state: dict = {}

    def begin():
        state.update(headers={}, data=[], field=[], value=[])

    def header_field(data, start, end):
        state["field"].append(data[start:end])

    def header_value(data, start, end):
        state["value"].append(data[start:end])

    def header_end():
        state["headers"][b"".join(state["field"]).lower()] = b"".join(state["value"])
        state["field"], state["value"] = [], []

    def data(chunk, start, end):
        state["data"].append(chunk[start:end])

    def end():
        if len(parts) >= MAX_PARTS:
            raise RequestError(f"multipart form: more than {MAX_PARTS} parts")
        parts.append((state["headers"], b"".join(state["data"])))

    parser = MultipartParser(boundary, callbacks={
        "on_part_begin": begin, "on_header_field": header_field,
        "on_header_value": header_value, "on_header_end": header_end, "on_part_data": data,
        "on_part_end": end})
    try:
        parser.write(body)
        parser.finalize()
    except RequestError:
        raise
    except Exception as exc:  # noqa: BLE001 - the parser's errors have several types
        raise RequestError(f"multipart form: malformed body ({exc})") from None
    fields: dict[str, tuple[str | None, bytes]] = {}
    for headers, content in parts:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name")
        if name is None:
            raise RequestError("multipart form: a part has no name (Content-Disposition)")
        filename = disposition.get(b"filename")
        fields.setdefault(name.decode("utf-8", "replace"),
                          (None if filename is None else filename.decode("utf-8", "replace"),
                           content))
    return fields


__all__ = ["MAX_PARTS", "parse_multipart"]
