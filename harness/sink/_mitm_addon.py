"""A mitmproxy addon (loaded by ``mitmdump -s``): record every request and answer it here, never forwarding it.

Runs in mitmproxy's own environment, so it imports nothing from race-harness: it appends one JSON
line per request to ``sink_records`` and answers with ``sink_status``/``sink_body`` after
``sink_latency_ms``. Any connection mitmproxy would open to a real server is refused in
``server_connect`` and counted in the records as a ``blocked`` line: nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

from mitmproxy import http


class RecordAndAnswer:
    def __init__(self) -> None:
        self._lock = threading.Lock()

    def load(self, loader) -> None:
        loader.add_option("sink_records", str, "", "JSON-lines file the sink reads")
        loader.add_option("sink_status", int, 200, "status of every answer")
        loader.add_option("sink_body", str, "", "body of every answer")
        loader.add_option("sink_content_type", str, "application/json", "content type of every answer")
        loader.add_option("sink_latency_ms", int, 0, "milliseconds before answering")

    def _append(self, record: dict) -> None:
        from mitmproxy import ctx

        with self._lock, open(ctx.options.sink_records, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def server_connect(self, data) -> None:
        # The sink never forwards: a connection to the real host is refused before it is opened.
        self._append({"t": time.time(), "channel": "proxy", "blocked": f"{data.server.address}"})
        data.server.error = "race-harness sink: never forwarded"

    async def request(self, flow: http.HTTPFlow) -> None:
        from mitmproxy import ctx

        request = flow.request
        body = request.get_content(strict=False) or b""
        self._append({"t": time.time(), "channel": "proxy", "method": request.method, "scheme": request.scheme,
                      "host": request.pretty_host, "port": request.port, "path": request.path,
                      "headers": {k: v for k, v in request.headers.items(multi=False)},
                      "body": body.decode("utf-8", "replace"), "status": ctx.options.sink_status})
        if ctx.options.sink_latency_ms:
            await asyncio.sleep(ctx.options.sink_latency_ms / 1000)
        flow.response = http.Response.make(ctx.options.sink_status, ctx.options.sink_body.encode(),
                                           {"content-type": ctx.options.sink_content_type})


addons = [RecordAndAnswer()]
