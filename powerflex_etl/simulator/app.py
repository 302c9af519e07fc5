"""The FastAPI app: PowerFlex's endpoints, JWT auth, fault injection, streamed answers."""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from powerflex_etl.simulator import source
from powerflex_etl.simulator.config import SimulatorConfig
from powerflex_etl.simulator.data import DAY
from powerflex_etl.simulator.dcm import (
    BadRequest,
    DcmState,
    check_schedule,
    check_signal,
    check_targets,
)
from powerflex_etl.simulator.encode import Shape, answer

# a truncated answer is cut in half, and never holds more than this
_TRUNCATE_CAP = 4 * 1024 * 1024


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _Server:
    """Per-app state: the secret, the DCM state, the fault RNG and the request log."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.secret = secrets.token_hex(32)
        self.dcm = DcmState()
        self.rng = random.Random(config.seed)
        self.lock = threading.Lock()
        # bounded, so a long-running server does not grow without end
        self.seen: deque[dict[str, Any]] = deque(maxlen=10_000)
        # token revocation: every token carries its serial "n"; tokens below this are revoked
        self.serial = 0
        self.revoked_below = 0
        self.uses: dict[int, int] = {}
        self.accepted = 0

    def record(self, request: Request, body: Any) -> None:
        if isinstance(body, dict) and "password" in body:
            body = {**body, "password": "***"}
        with self.lock:
            self.seen.append({"method": request.method, "path": request.url.path, "body": body})

    def fault(self, login: bool) -> Response | None:
        """A 503/429 answer when a fault switch says so (never for /login)."""
        f = self.config.faults
        if login:
            return None
        retry = {"Retry-After": str(max(0, math.ceil(f.retry_after_s)))}
        with self.lock:
            if f.fail_next > 0:
                f.fail_next -= 1
                return _error(503, "service unavailable (injected); retry later")
            if f.rate_limit_next > 0:
                f.rate_limit_next -= 1
                return _error(429, "too many requests (injected); retry after Retry-After", retry)
            roll = self.rng.random() if (f.error_rate or f.rate_limit_rate) else 1.0
        if roll < f.error_rate:
            return _error(503, "service unavailable (injected); retry later")
        if roll < f.error_rate + f.rate_limit_rate:
            return _error(429, "too many requests (injected); retry after Retry-After", retry)
        return None

    def authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=["HS256"], options={"require": ["exp", "iat"]}
            )
        except jwt.PyJWTError:
            return False
        return self.use(claims.get("n"))

    def use(self, n: Any) -> bool:
        """Count one use of token ``n``, unless it is revoked or used up."""
        f = self.config.faults
        if not isinstance(n, int):
            return False
        with self.lock:
            if n < self.revoked_below:
                return False
            if f.token_max_uses and self.uses.get(n, 0) >= f.token_max_uses:
                return False
            self.uses[n] = self.uses.get(n, 0) + 1
            self.accepted += 1
            if f.foreign_login_every and self.accepted % f.foreign_login_every == 0:
                self.revoked_below = self.serial + 1
        return True

    def revoke_all(self) -> None:
        """Revoke every token issued so far, as another login on the same account does."""
        with self.lock:
            self.revoked_below = self.serial + 1

    def token(self) -> str:
        now = int(time.time())
        with self.lock:
            self.serial += 1
            n = self.serial
            if self.config.faults.single_session:
                self.revoked_below = n
        claims = {
            "iat": now,
            "nbf": now,
            "exp": now + int(self.config.token_lifetime_s),
            "identity": self.config.username,
            "n": n,
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    async def enter(self, request: Request, *, login: bool = False) -> tuple[Any, Response | None]:
        """Read and log the body, apply latency and faults, check the token."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        self.record(request, body if body is not None else raw.decode(errors="replace"))
        latency = self.config.faults.latency_s
        if latency > 0:
            await asyncio.sleep(latency)
        early = self.fault(login)
        if early is not None:
            return body, early
        if body is None:
            return body, _error(
                400, f"{request.url.path}: body is not valid JSON; send a JSON object"
            )
        if not login and not self.authorised(request):
            return body, _error(
                401,
                "missing, invalid or expired token; POST /login and send Authorization: Bearer <token>",
            )
        return body, None


def _acc(acc_id: str) -> int | None:
    return int(acc_id) if acc_id.isdigit() else None


def _window(body: Any, key: str) -> tuple[str, float, float]:
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    m = body.get("measurement")
    if m not in source.MEASUREMENTS:
        raise BadRequest(f"unknown measurement {m!r}; use one of {', '.join(source.MEASUREMENTS)}")
    w: Any = body.get(key)
    ok = (
        isinstance(w, list)
        and len(w) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in w)
    )
    if not ok or not all(math.isfinite(x) and x >= 0 for x in w) or w[0] > w[1]:
        raise BadRequest(f"{key} must be [start, stop] epoch seconds with 0 <= start <= stop")
    return m, float(w[0]), float(w[1])


def create_app(config: SimulatorConfig) -> FastAPI:
    """The PowerFlex API app for ``config`` (state lives in the app instance)."""
    app = FastAPI(title="PowerFlex API simulator", docs_url=None, redoc_url=None, openapi_url=None)
    srv = _Server(config)
    app.state.sim = srv

    @app.post("/login")
    async def login(request: Request) -> Response:
        body, early = await srv.enter(request, login=True)
        if early is not None:
            return early
        user = body.get("username") if isinstance(body, dict) else None
        pw = body.get("password") if isinstance(body, dict) else None
        good = (
            isinstance(user, str)
            and isinstance(pw, str)
            and hmac.compare_digest(user.encode(), config.username.encode())
            and hmac.compare_digest(pw.encode(), config.password.encode())
        )
        if not good:
            return _error(401, "authorization failed: bad username or password")
        return JSONResponse({"access_token": srv.token()})

    @app.post("/get_measurement_data")
    async def get_measurement_data(request: Request) -> Response:
        body, early = await srv.enter(request)
        if early is not None:
            return early
        try:
            m, start, end = _window(body, config.window_key)
        except BadRequest as e:
            return _error(400, f"get_measurement_data: {e}")
        f = config.faults
        if m in f.forbidden:
            return _error(403, f"get_measurement_data: this account may not read {m}")
        if f.ignore_time_filter:
            start, end = (
                math.floor(start / DAY) * DAY,
                max(math.ceil(end / DAY), math.floor(start / DAY) + 1) * DAY,
            )
        shape = Shape(f.rfc3339, f.split_tags, f.wrap_data, f.chunked, f.max_rows)
        pieces = answer(m, source.blocks(config, m, start, end), shape)
        if f.truncate and (not f.truncate_measurements or m in f.truncate_measurements):
            prefix = _prefix(pieces)
            return Response(prefix, media_type="application/json", headers={"Connection": "close"})
        return StreamingResponse(pieces, media_type="application/json")

    @app.post("/get_external_signal/{acc_id}")
    async def get_external_signal(acc_id: str, request: Request) -> Response:
        body, early = await srv.enter(request)
        if early is not None:
            return early
        acc = _acc(acc_id)
        if acc is None:
            return _error(404, f"get_external_signal: acc_id {acc_id!r} must be an integer")
        signals = srv.dcm.get_signals(acc)
        name = body.get("name") if isinstance(body, dict) else None
        if name is None:
            return JSONResponse(signals)
        if name not in signals:
            return _error(404, f"get_external_signal/{acc}: no external signal named {name!r}")
        return JSONResponse(signals[name])

    @app.post("/set_external_signal/{acc_id}")
    async def set_external_signal(acc_id: str, request: Request) -> Response:
        body, early = await srv.enter(request)
        if early is not None:
            return early
        acc = _acc(acc_id)
        if acc is None:
            return _error(404, f"set_external_signal: acc_id {acc_id!r} must be an integer")
        try:
            signal = check_signal(body)
        except BadRequest as e:
            return _error(400, f"set_external_signal/{acc}: {e}")
        return JSONResponse(srv.dcm.set_signal(acc, signal))

    @app.post("/set_real_time_load/{acc_id}")
    async def set_real_time_load(acc_id: str, request: Request) -> Response:
        body, early = await srv.enter(request)
        if early is not None:
            return early
        acc = _acc(acc_id)
        if acc is None:
            return _error(404, f"set_real_time_load: acc_id {acc_id!r} must be an integer")
        load = body.get("real_time_load_kW") if isinstance(body, dict) else None
        if not isinstance(load, int) or isinstance(load, bool) or load < 0:
            return _error(
                400, f"set_real_time_load/{acc}: real_time_load_kW must be a non-negative integer"
            )
        srv.dcm.real_time_load[acc] = load
        return JSONResponse({"real_time_load_kW": load})

    @app.get("/get_target_peak_power_kW/{acc_id}")
    async def get_target_peak_power(acc_id: str, request: Request) -> Response:
        _, early = await srv.enter(request)
        if early is not None:
            return early
        acc = _acc(acc_id)
        if acc is None:
            return _error(404, f"get_target_peak_power_kW: acc_id {acc_id!r} must be an integer")
        return JSONResponse(dict(sorted(srv.dcm.get_targets(acc).items())))

    @app.post("/set_target_peak_power_kW/{acc_id}")
    async def set_target_peak_power(acc_id: str, request: Request) -> Response:
        body, early = await srv.enter(request)
        if early is not None:
            return early
        acc = _acc(acc_id)
        if acc is None:
            return _error(404, f"set_target_peak_power_kW: acc_id {acc_id!r} must be an integer")
        try:
            update = check_targets(body)
        except BadRequest as e:
            return _error(400, f"set_target_peak_power_kW/{acc}: {e}")
        return JSONResponse(dict(sorted(srv.dcm.set_targets(acc, update).items())))

    @app.post("/set_max_power_schedule/{acc_id}")
    async def set_max_power_schedule(acc_id: str, request: Request) -> Response:
        body, early = await srv.enter(request)
        if early is not None:
            return early
        acc = _acc(acc_id)
        if acc is None:
            return _error(404, f"set_max_power_schedule: acc_id {acc_id!r} must be an integer")
        try:
            schedule = check_schedule(body)
        except BadRequest as e:
            return _error(400, f"set_max_power_schedule/{acc}: {e}")
        srv.dcm.schedules[acc] = schedule
        return JSONResponse(schedule)

    return app


def _prefix(pieces: Iterator[bytes]) -> bytes:
    """The first half of the answer (bounded), so the body is never valid JSON."""
    buf = bytearray()
    for p in pieces:
        buf += p
        if len(buf) >= 2 * _TRUNCATE_CAP:
            break
    return bytes(buf[: max(1, len(buf) // 2)])
