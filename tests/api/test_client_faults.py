"""Failures the simulator cannot produce, from a tiny scripted server on loopback.

Cut bodies (Content-Length and chunked), reset connections, read timeouts, non-JSON error
pages and a self-signed HTTPS server. The client's sleep is injected: nothing here waits
for backoff.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from powerflex_etl.api.client import PowerflexClient
from powerflex_etl.errors import (
    AnswerTooLargeError,
    AuthError,
    FatalApiError,
    RetryableApiError,
    TLSVerificationError,
)
from powerflex_etl.settings import Settings

PASSWORD = "s3cret-Pa55word"
START = datetime(2024, 6, 1, tzinfo=UTC)
END = datetime(2024, 6, 1, 6, tzinfo=UTC)
BODY = json.dumps({"results": [{"statement_id": 0}]}).encode()


def _token(serial: int) -> str:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 86400, "jti": f"tok{serial:06d}"}
    seg = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{seg}.c2lnbmF0dXJlc2ln"


Behaviour = Callable[[BaseHTTPRequestHandler], None]


class Fake:
    """Answers /login itself; every other request takes the next scripted behaviour."""

    def __init__(self) -> None:
        self.script: list[Behaviour] = []
        self.paths: list[str] = []
        self.bodies: list[bytes] = []
        self.logins = 0
        self.tokens: list[str] = []
        self.release = threading.Event()
        self.lock = threading.Lock()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        with self.lock:
            if h.path == "/login":
                self.logins += 1
                self.tokens.append(_token(self.logins))
                _send(h, 200, json.dumps({"access_token": self.tokens[-1]}).encode())
                return
            self.paths.append(h.path)
            self.bodies.append(raw)
            behaviour = self.script.pop(0) if self.script else ok(BODY)
        behaviour(h)


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k.replace("_", "-"), v)
    h.end_headers()
    h.wfile.write(body)


def ok(body: bytes) -> Behaviour:
    return lambda h: _send(h, 200, body)


def status(code: int, body: bytes = b"{}", **headers: str) -> Behaviour:
    return lambda h: _send(h, code, body, **headers)


def cut_content_length(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(len(BODY) + 1000))
    h.end_headers()
    h.wfile.write(BODY)
    h.close_connection = True


def cut_chunked(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    h.wfile.write(b"%x\r\n%s\r\n" % (len(BODY), BODY))
    h.wfile.write(b'400\r\n{"results"')  # a chunk promised and never finished
    h.close_connection = True


def reset(h: BaseHTTPRequestHandler) -> None:
    h.close_connection = True  # no status line at all: the client sees the connection drop


def hang(fake: Fake) -> Behaviour:
    def behaviour(h: BaseHTTPRequestHandler) -> None:
        fake.release.wait(10)
        h.close_connection = True

    return behaviour


def stall_mid_body(fake: Fake) -> Behaviour:
    def behaviour(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(BODY) + 1000))
        h.end_headers()
        h.wfile.write(BODY)
        h.wfile.flush()
        fake.release.wait(10)
        h.close_connection = True

    return behaviour


def chunked(parts: list[bytes]) -> Behaviour:
    def behaviour(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for p in parts:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
        h.wfile.write(b"0\r\n\r\n")

    return behaviour


def _serve(fake: Fake, context: ssl.SSLContext | None = None) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            fake.handle(self)

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    scheme = "https" if context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
def url(fake: Fake) -> Iterator[str]:
    yield from _serve(fake)


def _client(url: str, sleeps: list[float], **kw: object) -> PowerflexClient:
    settings = Settings(
        base_url=url,
        username="demo",
        password=PASSWORD,
        max_attempts=kw.pop("max_attempts", 4),
        retry_backoff_s=0.5,
        **kw,
    )
    return PowerflexClient(settings, sleep=sleeps.append, rand=lambda: 0.5)


def test_cut_content_length_is_retried_then_succeeds(fake: Fake, url: str) -> None:
    fake.script = [cut_content_length, cut_chunked]
    sleeps: list[float] = []
    with _client(url, sleeps) as c:
        assert c.get_measurement_data("ct_response", START, END) == BODY
    assert len(fake.paths) == 3
    assert sleeps == [0.25, 0.5]  # full jitter at rand=0.5 under 0.5 s * 2**n


@pytest.mark.parametrize("cut", [cut_content_length, cut_chunked])
def test_a_body_that_stays_cut_fails_naming_the_measurement_and_window(
    fake: Fake, url: str, cut: Behaviour
) -> None:
    fake.script = [cut] * 3
    with (
        _client(url, [], max_attempts=3) as c,
        pytest.raises(RetryableApiError) as info,
    ):
        c.get_measurement_data("evse_request", START, END)
    msg = str(info.value)
    assert "truncated answer" in msg
    assert "evse_request" in msg and "2024-06-01T00:00:00Z" in msg and "2024-06-01T06:00:00Z" in msg
    assert "3 attempt" in msg and "\n" not in msg
    assert len(fake.paths) == 3


def test_reset_connections_are_retried(fake: Fake, url: str) -> None:
    fake.script = [reset, reset]
    sleeps: list[float] = []
    with _client(url, sleeps) as c:
        assert c.get_measurement_data("ct_response", START, END) == BODY
    assert len(sleeps) == 2


def test_read_timeouts_are_retried_and_reported_as_timed_out(fake: Fake, url: str) -> None:
    fake.script = [hang(fake), hang(fake)]
    with (
        _client(url, [], max_attempts=2, read_timeout_s=0.2) as c,
        pytest.raises(RetryableApiError, match="timed out") as info,
    ):
        c.get_measurement_data("ct_response", START, END)
    assert "ct_response" in str(info.value)


def test_a_stall_mid_body_is_a_timeout_not_a_cut(fake: Fake, url: str) -> None:
    fake.script = [stall_mid_body(fake)]
    with (
        _client(url, [], max_attempts=1, read_timeout_s=0.2) as c,
        pytest.raises(RetryableApiError, match="timed out reading the answer"),
    ):
        c.get_measurement_data("ct_response", START, END)


def test_chunked_answers_are_joined_and_capped(fake: Fake, url: str) -> None:
    parts = [b"x" * 1000] * 5
    fake.script = [chunked(parts), chunked(parts)]
    with _client(url, [], max_answer_bytes=5000) as c:
        assert c.get_measurement_data("ct_response", START, END) == b"x" * 5000
    with (
        _client(url, [], max_answer_bytes=4999) as c,
        pytest.raises(AnswerTooLargeError, match="ct_response") as info,
    ):
        c.get_measurement_data("ct_response", START, END)
    assert "POWERFLEX_MAX_ANSWER_BYTES" in info.value.one_line()


def test_declared_length_over_the_cap_fails_before_reading(fake: Fake, url: str) -> None:
    fake.script = [ok(b"y" * 10_000)]
    with _client(url, [], max_answer_bytes=100) as c, pytest.raises(AnswerTooLargeError):
        c.get_measurement_data("ct_response", START, END)
    assert len(fake.paths) == 1  # not retried


def test_non_json_error_page_is_fatal_with_its_text_and_no_retry(fake: Fake, url: str) -> None:
    fake.script = [status(404, b"<html>No such endpoint</html>")]
    with _client(url, []) as c, pytest.raises(FatalApiError) as info:
        c.get_target_peak_power("03")
    assert "HTTP 404" in str(info.value) and "No such endpoint" in str(info.value)
    assert fake.paths == ["/get_target_peak_power_kW/3"]


def test_error_text_echoing_a_secret_is_redacted(fake: Fake, url: str) -> None:
    fake.script = [status(400, json.dumps({"error": f"bad password {PASSWORD}"}).encode())]
    with _client(url, []) as c, pytest.raises(FatalApiError) as info:
        c.get_external_signal(1)
    assert PASSWORD not in str(info.value) and "bad password" in str(info.value)


def test_401_replays_once_then_auth_error(
    fake: Fake, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script = [status(401), status(401)]
    with _client(url, []) as c, pytest.raises(AuthError, match="even after a fresh login") as info:
        c.set_real_time_load(2, 1100)
    assert fake.logins == 2 and len(fake.paths) == 2
    for secret in [PASSWORD, *fake.tokens]:
        assert secret not in str(info.value) and secret not in caplog.text


def test_budget_stops_retries_before_a_long_retry_after(fake: Fake, url: str) -> None:
    fake.script = [status(503, Retry_After="400")]
    sleeps: list[float] = []
    with _client(url, sleeps, retry_max_total_s=300) as c, pytest.raises(RetryableApiError) as info:
        c.get_measurement_data("ct_response", START, END)
    assert sleeps == [] and info.value.status == 503 and info.value.retry_after == 400
    assert "last status 503" in str(info.value)


def _self_signed(tmp: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return ctx


@pytest.fixture
def tls_url(fake: Fake, tmp_path: Path) -> Iterator[str]:
    yield from _serve(fake, _self_signed(tmp_path))


def test_tls_is_verified_by_default(
    tls_url: str, fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert Settings().verify_tls is True
    with _client(tls_url, []) as c, pytest.raises(TLSVerificationError) as info:
        c.get_measurement_data("ct_response", START, END)
    assert "certificate" in str(info.value) and "did not verify" in str(info.value)
    assert "POWERFLEX_VERIFY_TLS" in info.value.one_line()
    assert fake.logins == 0  # nothing, not even the password, went to an unverified server


def test_tls_with_verification_off_works(tls_url: str, fake: Fake) -> None:
    with _client(tls_url, [], verify_tls=False) as c:
        assert c.get_measurement_data("ct_response", START, END) == BODY
    assert fake.logins == 1
