"""The design studio's web server: candidates, mixes and strips drawn on request, and favourites.

API (fixed; outside checks use it), each a PNG at the model's resolution:
    GET /api/image?seed=S[&psi=P][&noise=const|random]
    GET /api/mix?a=A&b=B&band=coarse|middle|fine[&psi=P][&noise=...]   A with B's styles of that band
    GET /api/interpolate?a=A&b=B[&steps=N][&psi=P]                     a strip of N cells from A to B
Defaults psi 1, noise const, steps 8; seeds 0 .. 2^32-1, psi -2 .. 2, steps 2 .. 64. Anything else is a
4xx with {"error": "..."}. The page also uses /api/model, /api/favourites (GET, POST), /api/favourites/
delete (POST) and /api/export?id=N[&scale=1|4].

What a visitor can reach: the page's three static files and images the model draws from validated
numbers. No value from a client names a file; the only file written is the favourites file given at
start. Routing, errors and the loopback, Host and Origin checks are the shared web layer's
(pipeline/core/web.py).
"""
from __future__ import annotations

import logging
import webbrowser
from pathlib import Path

from pipeline.core import web
from pipeline.core.web import RequestError
from pipeline.evaluate.sampling import BANDS, NOISE_MODES
from pipeline.studio.engine import Engine, Spec, enlarge
from pipeline.studio.favourites import EXPORT_SCALE, PSI_RANGE, SEED_MAX, Favourites, check_settings, spec_of

log = logging.getLogger("studio")

STATIC = Path(__file__).parent / "static"
STEPS_RANGE = (2, 64)
MAX_BODY = 10_000               # bytes of a favourite's JSON


def parse_psi(query: dict) -> float:
    return web.parse_float(query, "psi", 1.0, *PSI_RANGE)


def parse_spec(kind: str, query: dict) -> Spec:
    """The query of /api/<kind> as a Spec; a RequestError (400) names the first bad value."""
    if kind == "image":
        return Spec("image", web.parse_int(query, "seed", None, 0, SEED_MAX), parse_psi(query),
                    web.parse_choice(query, "noise", "const", NOISE_MODES))
    a = web.parse_int(query, "a", None, 0, SEED_MAX)
    b = web.parse_int(query, "b", None, 0, SEED_MAX)
    if kind == "mix":
        return Spec("mix", a, parse_psi(query), web.parse_choice(query, "noise", "const", NOISE_MODES), b=b,
                    band=web.parse_choice(query, "band", None, BANDS))
    return Spec("interpolate", a, parse_psi(query), web.parse_choice(query, "noise", "const", NOISE_MODES), b=b,
                steps=web.parse_int(query, "steps", 8, *STEPS_RANGE))


class Handler(web.Handler):
    max_body = MAX_BODY
    static = web.static_files(STATIC, {"/": "index.html", "/static/studio.js": "studio.js",
                                       "/static/studio.css": "studio.css"})
    routes = (("GET", "/api/image", "image"),
              ("GET", "/api/mix", "image"),
              ("GET", "/api/interpolate", "image"),
              ("GET", "/api/model", "model"),
              ("GET", "/api/favourites", "favourites"),
              ("POST", "/api/favourites", "add_favourite"),
              ("POST", "/api/favourites/delete", "delete_favourite"),
              ("GET", "/api/export", "export"))
    server: "StudioServer"

    def _draw(self, spec: Spec) -> bytes:
        try:
            return self.server.engine.png(spec)
        except RuntimeError as e:   # the engine is stopping (Ctrl-C)
            raise RequestError(503, str(e))

    def image(self, url, query, _match) -> None:
        self.send(self._draw(parse_spec(url.path.rsplit("/", 1)[1], query)), "image/png")

    def model(self, _url, _query, _match) -> None:
        self.send_json({**self.server.engine.info(), "favourites_file": str(self.server.favourites.path)})

    def favourites(self, _url, _query, _match) -> None:
        sha = self.server.engine.sha256
        with self.server.favourites.lock:
            entries = [{**f, "this_model": f["sha256"] == sha} for f in self.server.favourites.entries]
        self.send_json({"favourites": entries, "file": str(self.server.favourites.path)})

    def add_favourite(self, _url, _query, _match) -> None:
        try:
            settings = check_settings(self.read_json(), "favourite")
        except ValueError as e:
            raise RequestError(400, str(e))
        engine = self.server.engine
        fav = self.server.favourites.add(settings, engine.sha256, engine.checkpoint, engine.res)
        log.info("favourite %d kept: seed %d, psi %g%s", fav["id"], fav["seed"], fav["psi"],
                 f", {fav['band']} of {fav['mix_seed']}" if fav["band"] else "")
        self.send_json({**fav, "this_model": True})

    def delete_favourite(self, _url, _query, _match) -> None:
        body = self.read_json()
        fid = body.get("id") if isinstance(body, dict) else None
        if not isinstance(fid, int) or isinstance(fid, bool):
            raise RequestError(400, 'expected {"id": N}')
        if not self.server.favourites.remove(fid):
            raise RequestError(404, f"no favourite {fid}")
        self.send_json({"deleted": fid})

    def export(self, _url, query, _match) -> None:
        fid = web.parse_int(query, "id", None, 1, 10**9)
        scale = web.parse_int(query, "scale", 1, 1, EXPORT_SCALE)
        if scale not in (1, EXPORT_SCALE):
            raise RequestError(400, f"scale must be 1 or {EXPORT_SCALE}")
        fav = self.server.favourites.get(fid)
        if fav is None:
            raise RequestError(404, f"no favourite {fid}")
        if fav["sha256"] != self.server.engine.sha256:
            raise RequestError(409, f"favourite {fid} was drawn by another checkpoint ({fav['checkpoint']}); "
                                    "open the studio on that one to export it")
        data = self._draw(spec_of(fav))
        self.send(enlarge(data, scale) if scale > 1 else data, "image/png")


class StudioServer(web.Server):
    engine: Engine
    favourites: Favourites


def make_server(checkpoint, host: str = "127.0.0.1", port: int = 8766, device: str = "auto",
                favourites=None, engine: Engine | None = None) -> StudioServer:
    """A ready server (not yet serving); port 0 picks any free port, see `server.url`."""
    from pipeline.studio.favourites import DEFAULT_FILE

    store = Favourites(DEFAULT_FILE if favourites is None else favourites)
    engine = engine or Engine(checkpoint, device)
    return web.make_server(Handler, host, port, engine=engine, favourites=store)


def serve(checkpoint, host: str = "127.0.0.1", port: int = 8766, device: str = "auto", favourites=None,
          open_browser: bool = False) -> None:
    server = make_server(checkpoint, host, port, device, favourites)
    engine = server.engine
    log.info("design studio: %s  (%s: %d px wide x %d tall on %s; favourites in %s; Ctrl-C stops)", server.url,
             checkpoint, engine.res // engine.aspect, engine.res, engine.device, server.favourites.path)
    if open_browser:
        webbrowser.open(server.url)
    try:
        web.serve_until_stopped(server, "the design studio", f"stopped; favourites are in {server.favourites.path}")
    finally:
        engine.close()
