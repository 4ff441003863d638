"""The `egoworld play` web app: FastAPI routes, one WebSocket per page, the model on a worker thread.

    app = create_app(engine)                      # FastAPI; serve with uvicorn
    serve(app, sock)                              # run until Ctrl+C on an already bound socket

Routes (every {sid} is a session: one per open page):

    GET  /                                  the page (static/index.html, plain HTML + JS)
    GET  /api/info                          model, controller, samples, limits
    POST /api/sessions                      a new session (the WebSocket makes one too)
    WS   /ws[?session=SID]                  hello, then walk / frames / status / error messages;
                                            the page sends {"type": "act" | "undo" | "reset"}
    GET  /api/sessions/{sid}                status of a session
    POST /api/sessions/{sid}/image[?name=]  raw image bytes as the body -> new start image
    POST /api/sessions/{sid}/sample/{name}  a bundled start image
    POST /api/sessions/{sid}/command        the same JSON messages as the WebSocket
    GET  /api/sessions/{sid}/walk.mp4|walk.gif[?scale=N], /walk_actions.json   downloads
    GET  /samples/{name}.png                bundled start images

Key presses queue in the session; a session with queued presses runs a pump task that hands one
chunk at a time to the engine's one-thread executor (all sessions share that queue) and streams
the frames back as soon as the chunk is made. A failing chunk, a bad upload or a page that closes
mid-chunk is reported (on the page, or one log line) and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from egoworld.errors import EgoworldError
from egoworld.play.engine import PlayEngine
from egoworld.play.session import Job, Session, png_data_url

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000
EXPORT_SIZE = 256  # downloads are upscaled (nearest neighbour) to at least this many pixels by default


class PlayServer:
    """Sessions and their pumps around one shared `PlayEngine`.

    Args:
        engine: the model, its controller and sampling settings.
        max_upload_bytes, max_pixels: limits for uploaded start images.
        max_sessions: open sessions at most; pages closed longer than `keep_s` seconds are
            forgotten first.
        max_frames: longest walk per session.
    """

    def __init__(
        self,
        engine: PlayEngine,
        *,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        max_pixels: int = MAX_PIXELS,
        max_sessions: int = 32,
        keep_s: float = 600.0,
        max_frames: int = 2000,
    ):
        from egoworld.play.samples import samples

        self.engine = engine
        self.max_upload_bytes, self.max_pixels = int(max_upload_bytes), int(max_pixels)
        self.max_sessions, self.keep_s, self.max_frames = int(max_sessions), float(keep_s), int(max_frames)
        self.sessions: dict[str, Session] = {}
        self.samples = samples()
        self._sample_png = {name: s.png() for name, s in self.samples.items()}

    # sessions ---------------------------------------------------------------------------------

    def info(self) -> dict:
        return {
            "model": self.engine.describe(),
            "controller": self.engine.controller.to_json(),
            "samples": [{"name": s.name, "title": s.title, "kind": s.kind} for s in self.samples.values()],
            "limits": {
                "max_upload_bytes": self.max_upload_bytes,
                "max_pixels": self.max_pixels,
                "max_frames": self.max_frames,
            },
        }

    def new_session(self) -> Session:
        now = time.monotonic()
        for sid, s in list(self.sessions.items()):  # forget pages closed long ago
            if s.detached_at is not None and now - s.detached_at > self.keep_s:
                del self.sessions[sid]
        if len(self.sessions) >= self.max_sessions:
            closed = sorted(
                (s.detached_at, sid) for sid, s in self.sessions.items() if s.detached_at is not None
            )
            if not closed:
                raise EgoworldError(
                    f"{len(self.sessions)} pages are open, the most this server keeps; close one and reload"
                )
            del self.sessions[closed[0][1]]
        session = Session(self.engine.controller, self.engine.chunk_size, max_frames=self.max_frames)
        session.detached_at = now  # until a page attaches
        self.sessions[session.id] = session
        return session

    def get(self, sid: str) -> Session:
        session = self.sessions.get(sid)
        if session is None:
            raise KeyError(f"no session {sid!r} (the server restarted or forgot it); reload the page")
        return session

    async def send(self, session: Session, message: dict) -> None:
        """Send to every page attached to `session`; a closed socket is dropped, never raised."""
        for ws in list(session.sockets):
            try:
                await ws.send_json(message)
            except Exception as err:  # noqa: BLE001 — any transport failure means the page is gone
                logger.debug("session %s: send failed (%s)", session.id, err)
                self.detach(session, ws)

    def detach(self, session: Session, ws) -> None:
        session.sockets.discard(ws)
        if not session.sockets:
            session.detached_at = time.monotonic()

    # start images -----------------------------------------------------------------------------

    def decode_upload(self, data: bytes, name: str) -> np.ndarray:
        """Uploaded bytes -> uint8 [H, W, 3] at the model's size; ValueError naming what is wrong."""
        from PIL import Image, UnidentifiedImageError

        from egoworld.rollout import load_image

        if not data:
            raise ValueError(f"{name}: the upload is empty; expected an image file")
        if len(data) > self.max_upload_bytes:
            raise ValueError(_too_big(name, len(data), self.max_upload_bytes))
        import io

        try:
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            Image.DecompressionBombError,
        ) as err:
            raise ValueError(
                f"{name}: not an image (PIL cannot read it: {type(err).__name__}); "
                "expected PNG, JPEG, WebP, ..."
            ) from err
        if w * h > self.max_pixels:
            raise ValueError(
                f"{name}: {w}x{h} px ({w * h / 1e6:.3g} megapixels); "
                f"expected at most {self.max_pixels / 1e6:.3g} megapixels"
            )
        with tempfile.TemporaryDirectory(prefix="egoworld-play-") as tmp:
            path = Path(tmp) / "upload"
            path.write_bytes(data)
            try:
                return load_image(path, self.engine.height, self.engine.width)  # [H, W, 3]
            except ValueError as err:
                detail = str(err).split("(", 1)[-1].rstrip(")")
                raise ValueError(f"{name}: cannot decode the image ({detail})") from err

    async def set_start(self, session: Session, image_HW3: np.ndarray, name: str) -> None:
        session.set_start(image_HW3, name)
        await self.send(session, session.walk_message())
        await self.send(session, session.status())

    # commands and the model pump ----------------------------------------------------------------

    async def handle(self, session: Session, message: dict) -> dict | None:
        """One page message; returns a reply for the page (notice / error) or None."""
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "act":
            session.set_state(message.get("state"))
            action, label = self.engine.controller.action(message)
            refused = session.press(action, label)
            if refused == "queue full":
                await self.send(session, session.status())
                return None  # merged away while the model is busy; the page shows the count
            if refused:
                return {"type": "notice", "message": refused}
            self.kick(session)
            await self.send(session, session.status())
            return None
        if kind == "undo":
            what = session.undo()
            await self.send(session, session.walk_message())
            await self.send(session, session.status())
            return {"type": "notice", "message": what}
        if kind == "reset":
            session.reset()
            await self.send(session, session.walk_message())
            await self.send(session, session.status())
            return {"type": "notice", "message": "back to the start image"}
        raise ValueError(f"unknown message type {kind!r}; expected 'act', 'undo' or 'reset'")

    def kick(self, session: Session) -> None:
        """Start the session's pump unless it is running."""
        if session.task is None or session.task.done():
            session.task = asyncio.get_running_loop().create_task(self._pump(session))

    def _run(self, job: Job) -> tuple[np.ndarray, list[str], float]:
        """On the model thread: generate the chunk and encode its frames."""
        t0 = time.perf_counter()
        frames = self.engine.generate(job.start_frame, job.actions, job.state, job.seed)  # [K-1, H, W, 3]
        model_s = time.perf_counter() - t0
        return frames, [png_data_url(f) for f in frames], model_s

    async def _pump(self, session: Session) -> None:
        loop = asyncio.get_running_loop()
        while (job := session.take_job(self.engine.seed)) is not None:
            await self.send(session, session.status())
            try:
                frames, urls, model_s = await loop.run_in_executor(self.engine.executor, self._run, job)
                chunk = session.finish(job, frames, urls, model_s)
            except Exception as err:  # noqa: BLE001 — a failed chunk is reported; the server stays up
                session.abandon(job)
                text = " ".join(str(err).split())[:300] or type(err).__name__
                logger.error(
                    "session %s: the model failed on a chunk (%s: %s)", session.id, type(err).__name__, text
                )
                await self.send(session, {"type": "error", "message": f"the model failed: {text}"})
                break
            if chunk is None:
                continue  # superseded by undo / reset / a new start image while it was made
            if not session.sockets:
                logger.warning(
                    "session %s: the page closed while a chunk was being made; its %d frames are kept "
                    "for %.0f s in case the page reconnects",
                    session.id,
                    chunk.count,
                    self.keep_s,
                )
            await self.send(
                session,
                {
                    "type": "frames",
                    "first": chunk.start,
                    "frames": urls,
                    "model_s": round(chunk.model_s, 3),
                    "latency_s": round(chunk.latency_s, 3),
                },
            )
        await self.send(session, session.status())

    # downloads ----------------------------------------------------------------------------------

    def export(self, session: Session, kind: str, scale: int | None) -> tuple[bytes, str, str]:
        """(bytes, media type, file name) of the walk as mp4 or GIF; runs off the event loop."""
        from egoworld.data.video import write_video

        if not session.has_start:
            raise ValueError("there is no walk yet: pick a start image first")
        frames = session.frames_array()  # [N, H, W, 3]
        if scale is None:
            scale = max(1, math.ceil(EXPORT_SIZE / min(frames.shape[1:3])))
        if not 1 <= scale <= 16:
            raise ValueError(f"scale={scale}; expected 1..16")
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
        stem = f"egoworld-walk-{session.id[:6]}"
        with tempfile.TemporaryDirectory(prefix="egoworld-play-") as tmp:
            if kind == "mp4":
                if frames.shape[1] % 2 or frames.shape[2] % 2:
                    frames = np.pad(
                        frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0))
                    )
                path = write_video(Path(tmp) / "walk.mp4", frames, self.engine.fps)
                return path.read_bytes(), "video/mp4", f"{stem}.mp4"
            from PIL import Image

            images = [Image.fromarray(f) for f in frames]
            path = Path(tmp) / "walk.gif"
            duration = round(1000 / self.engine.fps)
            images[0].save(
                path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
            )
            return path.read_bytes(), "image/gif", f"{stem}.gif"


def _report_warmup(future) -> None:
    err = None if future.cancelled() else future.exception()
    if err is not None:
        logger.warning(
            "the warm-up chunk failed (%s: %s); the first press will show why", type(err).__name__, err
        )


def _too_big(name: str, size: int, limit: int) -> str:
    return f"{name}: {size / 1e6:.1f} MB; expected an image of at most {limit / 1e6:g} MB"


def _same_origin(headers) -> bool:
    """A browser request from another site (DNS rebinding, a page on the web) is refused."""
    origin = headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == headers.get("host")


def create_app(engine: PlayEngine, *, warmup: bool = False, **limits):
    """The FastAPI app for `engine`; `limits` go to `PlayServer`. `warmup` runs one chunk at startup."""
    server = PlayServer(engine, **limits)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if warmup:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(engine.executor, engine.warmup)
            future.add_done_callback(_report_warmup)
        yield

    app = FastAPI(title="egoworld play", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def session_or_404(sid: str) -> Session:
        try:
            return server.get(sid)
        except KeyError as err:
            raise HTTPException(404, detail=str(err.args[0])) from err

    def check_origin(request: Request) -> None:
        if not _same_origin(request.headers):
            raise HTTPException(403, detail="requests from other sites are refused")

    @app.exception_handler(ValueError)
    async def bad_input(request: Request, err: ValueError):
        return JSONResponse({"detail": " ".join(str(err).split())}, status_code=400)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/info")
    async def info():
        return server.info()

    @app.get("/samples/{name}.png")
    async def sample_png(name: str):
        if name not in server._sample_png:
            raise HTTPException(404, detail=f"no sample {name!r}; expected one of {sorted(server.samples)}")
        return Response(server._sample_png[name], media_type="image/png")

    @app.post("/api/sessions")
    async def new_session(request: Request):
        check_origin(request)
        try:
            session = server.new_session()
        except EgoworldError as err:
            raise HTTPException(503, detail=str(err)) from err
        return {"session": session.id, **server.info()}

    @app.get("/api/sessions/{sid}")
    async def session_status(sid: str):
        session = session_or_404(sid)
        return {**session.status(), "image": session.image_name, "labels": session.labels}

    @app.post("/api/sessions/{sid}/image")
    async def upload(sid: str, request: Request, name: str = "upload"):
        check_origin(request)
        session = session_or_404(sid)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > server.max_upload_bytes:
            raise HTTPException(413, detail=_too_big(name, int(declared), server.max_upload_bytes))
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > server.max_upload_bytes:
                raise HTTPException(413, detail=_too_big(name, len(data), server.max_upload_bytes))
        image = await asyncio.to_thread(server.decode_upload, bytes(data), name)
        await server.set_start(session, image, name)
        return {"ok": True, "image": name, "frame": session.urls[0]}

    @app.post("/api/sessions/{sid}/sample/{name}")
    async def choose_sample(sid: str, name: str, request: Request):
        check_origin(request)
        session = session_or_404(sid)
        if name not in server.samples:
            raise HTTPException(404, detail=f"no sample {name!r}; expected one of {sorted(server.samples)}")
        from egoworld.rollout import fit_frames

        image = fit_frames(server.samples[name].pixels[None], engine.height, engine.width)[0]
        await server.set_start(session, image, server.samples[name].title)
        return {"ok": True, "image": name, "frame": session.urls[0]}

    @app.post("/api/sessions/{sid}/command")
    async def command(sid: str, request: Request):
        check_origin(request)
        session = session_or_404(sid)
        try:
            message = await request.json()
        except json.JSONDecodeError as err:
            raise HTTPException(400, detail=f"the body is not JSON ({err})") from err
        reply = await server.handle(session, message)
        return {**(reply or {"type": "ok"}), "status": session.status()}

    async def download(sid: str, kind: str, scale: int | None):
        session = session_or_404(sid)
        if not session.has_start:
            raise HTTPException(409, detail="there is no walk yet: pick a start image first")
        data, media, filename = await asyncio.to_thread(server.export, session, kind, scale)
        return Response(
            data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )

    @app.get("/api/sessions/{sid}/walk.mp4")
    async def walk_mp4(sid: str, scale: int | None = None):
        return await download(sid, "mp4", scale)

    @app.get("/api/sessions/{sid}/walk.gif")
    async def walk_gif(sid: str, scale: int | None = None):
        return await download(sid, "gif", scale)

    @app.get("/api/sessions/{sid}/walk_actions.json")
    async def walk_actions(sid: str):
        session = session_or_404(sid)
        if not session.has_start:
            raise HTTPException(409, detail="there is no walk yet: pick a start image first")
        body = json.dumps(session.export_actions(engine.describe()), indent=1)
        filename = f"egoworld-walk-{session.id[:6]}_actions.json"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        return Response(body, media_type="application/json", headers=headers)

    @app.websocket("/ws")
    async def socket(ws: WebSocket, session: str | None = None):
        if not _same_origin(ws.headers):
            await ws.close(code=1008, reason="requests from other sites are refused")
            return
        await ws.accept()
        try:
            s = server.sessions.get(session) if session else None
            s = s or server.new_session()
        except EgoworldError as err:
            await ws.send_json({"type": "error", "message": str(err)})
            await ws.close(code=1013)
            return
        s.sockets.add(ws)
        s.detached_at = None
        try:
            await ws.send_json({"type": "hello", "session": s.id, **server.info()})
            if s.has_start:
                await ws.send_json(s.walk_message())
            await ws.send_json(s.status())
            while True:
                text = await ws.receive_text()
                try:
                    message = json.loads(text)
                    reply = await server.handle(s, message)
                except (ValueError, KeyError) as err:  # JSONDecodeError is a ValueError
                    reply = {"type": "error", "message": " ".join(str(err).split())}
                if reply is not None:
                    await ws.send_json(reply)
        except WebSocketDisconnect:
            pass
        except RuntimeError as err:  # the transport went away between receive and send
            logger.debug("session %s: socket closed (%s)", s.id, err)
        finally:
            server.detach(s, ws)

    return app


def bind_socket(host: str, port: int):
    """A listening TCP socket on (host, port); port 0 picks a free one. EgoworldError if it cannot."""
    import socket

    if not 0 <= port <= 65535:
        raise ValueError(f"--port {port}; expected 0..65535 (0: any free port)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise EgoworldError(f"--host {host}: cannot resolve it ({err.strerror})") from err
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise EgoworldError(
            f"cannot listen on {host}:{port} ({err.strerror}); pass another --port (0 picks a free one)"
        ) from err
    sock.setblocking(False)
    return sock


def url_of(sock) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}/"


def serve(app, sock) -> None:
    """Serve `app` on the bound `sock` until interrupted (uvicorn; only warnings are logged)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, ws_ping_interval=20.0, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
