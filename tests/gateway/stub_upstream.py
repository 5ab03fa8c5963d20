"""A fault-injecting OpenAI-compatible upstream for the gateway tests, on raw asyncio sockets (so it
can also drop a connection or send a malformed reply, which an ASGI app cannot).

    python tests/gateway/stub_upstream.py --port PORT

The first path segment picks the behaviour; the rest is the OpenAI path (base URL
``http://127.0.0.1:PORT/<mode>/v1``):

- ``echo``: a deterministic chat or text completion with ``n`` choices ("stub answer I", plus
  " | system: ..." echoing a leading system message) and, when asked, ``logprobs``; the request body it received comes back verbatim in ``received`` (so a test can check
  the gateway forwarded it byte for byte). ``stream: true`` sends 3 SSE chunks 0.4 s apart.
- ``slow``: answers after 5 s.  ``error500`` / ``error429``: that status with an OpenAI error body.
- ``drop``: closes the connection without a reply.  ``dropstream``: one SSE chunk, then closes.
- ``malformed``: 200 with a body that is not JSON.
- ``GET <mode>/v1/models``: a one-model list, whatever the mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

STREAM_GAP_S = 0.4
SLOW_S = 5.0


def _response(status: int, body: bytes, content_type: str = "application/json", reason: str = "OK") -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        "x-stub-upstream: 1\r\n\r\n"
    )
    return head.encode() + body


def _completion(path: str, raw: bytes) -> dict[str, Any]:
    request = json.loads(raw)
    n = int(request.get("n") or 1)
    chat = path.endswith("/chat/completions")
    messages = request.get("messages") or [{}]
    system = f" | system: {messages[0]['content']}" if messages[0].get("role") == "system" else ""
    choices = []
    for i in range(n):
        text = f"stub answer {i}{system}"
        choice: dict[str, Any] = {"index": i, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        choice["logprobs"] = (
            {"content": [{"token": "stub", "logprob": -0.25, "top_logprobs": []}]} if request.get("logprobs") else None
        )
        choices.append(choice)
    return {
        "id": "stub-1",
        "object": "chat.completion" if chat else "text_completion",
        "created": 1700000000,
        "model": str(request.get("model") or "stub"),
        "choices": choices,
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
        "received": raw.decode("utf-8"),
    }


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    length = 0
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, path, body


async def _stream(writer: asyncio.StreamWriter, chunks: int, cut: bool) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    for i in range(chunks):
        event = {"id": "stub-s", "object": "chat.completion.chunk", "created": 1700000000, "model": "stub",
                 "choices": [{"index": 0, "delta": {"content": f"piece{i} "}, "finish_reason": None}]}
        data = f"data: {json.dumps(event)}\n\n".encode()
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()
        if cut:
            return  # the caller closes the socket mid-stream
        await asyncio.sleep(STREAM_GAP_S)
    done = b"data: [DONE]\n\n"
    writer.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
    await writer.drain()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:  # keep-alive: serve requests until the client closes
            request = await _read_request(reader)
            if request is None:
                return
            method, path, body = request
            mode = path.strip("/").split("/", 1)[0]
            if method == "GET" and path.endswith("/models"):
                listing = {"object": "list", "data": [{"id": "stub", "object": "model", "created": 0, "owned_by": "t"}]}
                writer.write(_response(200, json.dumps(listing).encode()))
            elif mode == "drop":
                return
            elif mode == "dropstream":
                await _stream(writer, 1, cut=True)
                return
            elif mode == "malformed":
                writer.write(_response(200, b"this is not json {"))
            elif mode in ("error500", "error429"):
                status = int(mode[-3:])
                error = {"error": {"message": f"stub upstream failure {status}", "type": "server_error",
                                   "param": None, "code": f"stub_{status}"}}
                writer.write(_response(status, json.dumps(error).encode(), reason="Error"))
            elif mode == "slow":
                await asyncio.sleep(SLOW_S)
                writer.write(_response(200, json.dumps(_completion(path, body)).encode()))
            elif json.loads(body or b"{}").get("stream"):
                await _stream(writer, 3, cut=False)
            else:
                writer.write(_response(200, json.dumps(_completion(path, body)).encode()))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port)
    print(f"stub upstream on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
