"""A third-party service for tests: an aiohttp app run as a ringlb replica.

    python echo_app.py PORT

GET /headers answers the request's header fields as JSON (what the replica
received from ringlb); /login redirects (302), /broken answers 500, /home
answers "home of SERVER_ID" (the id ringlb gave it, from the environment),
/ws is a WebSocket that answers each text message with "SERVER_ID:message",
GET /download?mib=N streams N MiB (chunked, a repeating pattern: PATTERN), and
POST /upload reads a body of any size as it comes and answers its length and
SHA-256.
"""

import hashlib
import os
import sys

from aiohttp import web


async def headers(request: web.Request) -> web.Response:
    fields: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        fields.setdefault(name.lower(), []).append(value)
    return web.json_response({"fields": fields, "server_id": os.environ.get("SERVER_ID")})


async def login(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/home")


async def broken(_request: web.Request) -> web.Response:
    return web.Response(status=500, text="broken")


async def home(_request: web.Request) -> web.Response:
    return web.Response(text=f"home of {os.environ.get('SERVER_ID')}")


async def ws(request: web.Request) -> web.WebSocketResponse:
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    async for msg in sock:
        if msg.type == web.WSMsgType.TEXT:
            await sock.send_str(f"{os.environ.get('SERVER_ID')}:{msg.data}")
    return sock


#: One MiB of the download's repeating bytes.
PATTERN = bytes(range(256)) * 4096


async def download(request: web.Request) -> web.StreamResponse:
    res = web.StreamResponse()
    res.enable_chunked_encoding()
    await res.prepare(request)
    for _ in range(int(request.query.get("mib", "1"))):
        await res.write(PATTERN)
    await res.write_eof()
    return res


async def upload(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for piece in request.content.iter_chunked(1 << 16):
        digest.update(piece)
        size += len(piece)
    return web.json_response({"bytes": size, "sha256": digest.hexdigest()})


def main() -> None:
    app = web.Application()
    app.add_routes([web.get("/headers", headers), web.get("/login", login),
                    web.get("/broken", broken), web.get("/home", home), web.get("/ws", ws),
                    web.get("/download", download), web.post("/upload", upload)])
    app._client_max_size = 0
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
