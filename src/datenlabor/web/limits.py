"""Request size limits: only the upload routes take large bodies.

FastAPI reads JSON and form bodies into memory whole, so every other route gets a small
limit (``MAX_BODY_BYTES``). A body announced larger is refused before it is read; a
chunked body without a length is counted while it arrives and cut off at the limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
MAX_HEAD_BYTES = 16 * 1024  # request line plus headers, as h11's default limit
# Multipart uploads stream to disk with their own limit (web.uploads).
STREAMED = re.compile(r"^(/api/v1/datasets(/[^/]+/versions)?|/upload)$")


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then is not None:
            return await then()  # e.g. a later http.disconnect
        return {"type": "http.disconnect"}

    return receive


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] == "POST" and STREAMED.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        if length is not None or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # No length given: take in up to the limit here (small by definition), then replay.
        # (Raising from inside receive() would reach FastAPI's body parser as a 400.)
        chunks: list[bytes] = []
        seen = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, send: Send) -> None:
        body: dict[str, Any] = {
            "error": f"the request body is larger than {self.max_bytes // 1024} KiB; "
            "upload files as multipart to /api/v1/datasets",
            "status": 413,
        }
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


# -- the HTTP server ------------------------------------------------------------------------
def server_options() -> dict[str, Any]:
    """How uvicorn must run the app (``datenlabor serve``, tests).

    h11 answers a request head beyond ``MAX_HEAD_BYTES`` with 400; httptools, which uvicorn
    picks by default when it is installed, buffers an endless header line without bound
    (one connection grew the server by 50 MB in a second). Per request h11 cost no
    measurable extra CPU (6.2 vs 6.3 ms for a rows page; docs/reliability.md). Keep-alive
    connections idle for 75 s are closed: longer than a reverse proxy's idle timeout (nginx:
    60 s), so the server never closes a connection while a client sends on it (with
    uvicorn's 5 s default, bench/load.py saw 13-18 failed POSTs per 5-minute run); an idle
    connection costs the asyncio server a few KiB. Neither parser times out a head or body
    that trickles in: the reverse proxy must.
    """
    return {
        "http": "h11",
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "timeout_keep_alive": 75,
    }
