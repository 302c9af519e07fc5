"""TLS end to end: the simulator served over HTTPS with a self-signed certificate.

By default ``powerflex-etl ingest`` refuses it with one line about certificate
verification, before the password is sent; it works with ``POWERFLEX_VERIFY_TLS=false`` or
with ``REQUESTS_CA_BUNDLE`` pointing at the certificate. Settings has no CA-file option of
its own: requests' ``REQUESTS_CA_BUNDLE`` is the documented way. A certificate for another
name, or an expired one, still fails verification even with the CA trusted.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn

from powerflex_etl.api.client import PowerflexClient
from powerflex_etl.errors import TLSVerificationError
from powerflex_etl.lake.store import Lake
from powerflex_etl.settings import Settings
from powerflex_etl.simulator import SimulatorConfig
from powerflex_etl.simulator.app import create_app
from tests.fixtures.cli_run import run_cli

T0 = datetime(2021, 6, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=6)
PASSWORD = "tls-test-password"


def make_cert(
    tmp: Path, *, name: str = "127.0.0.1", valid_days: int = 1, expired: bool = False
) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for ``name``; returns (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    start = now - dt.timedelta(days=10 if expired else 1)
    end = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=valid_days)
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"cert-{name}-{expired}.pem", tmp / f"key-{name}-{expired}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class HttpsSim:
    url: str
    cert: Path
    config: SimulatorConfig
    server: uvicorn.Server

    def logins(self) -> int:
        state = self.server.config.app.state.sim  # type: ignore[union-attr]
        with state.lock:
            return sum(1 for r in state.seen if r.get("path") == "/login")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def https_simulator(cert: Path, key: Path) -> Iterator[HttpsSim]:
    """The simulator app under uvicorn with TLS, on a free loopback port."""
    config = SimulatorConfig(seed=1, sample_period_s=60.0, password=PASSWORD)
    port = _free_port()
    uconf = uvicorn.Config(
        create_app(config),
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="critical",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(uconf)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready = threading.Event()
    while not ready.wait(0.01):  # poll the server's own flag, not the clock
        if server.started:
            ready.set()
        elif not thread.is_alive():
            raise RuntimeError("the HTTPS simulator did not start")
    try:
        yield HttpsSim(f"https://127.0.0.1:{port}", cert, config, server)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def https_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsSim]:
    cert, key = make_cert(tmp_path_factory.mktemp("tls"))
    with https_simulator(cert, key) as sim:
        yield sim


def _env(sim: HttpsSim, lake: Path, **extra: str) -> dict[str, str]:
    return {
        "POWERFLEX_BASE_URL": sim.url,
        "POWERFLEX_USERNAME": sim.config.username,
        "POWERFLEX_PASSWORD": PASSWORD,
        "POWERFLEX_LAKE": str(lake),
        # the machine's own trust settings must not decide the outcome
        "REQUESTS_CA_BUNDLE": "",
        "CURL_CA_BUNDLE": "",
        "SSL_CERT_FILE": "",
        **extra,
    }


ARGS = ["ingest", "--start", T0.isoformat(), "--end", T1.isoformat()]
ARGS += ["--measurement", "evse_request"]


def test_ingest_refuses_a_self_signed_server_by_default(https_sim: HttpsSim, tmp_path: Path):
    before = https_sim.logins()
    proc = run_cli(ARGS, _env(https_sim, tmp_path / "lake"))
    assert proc.returncode != 0
    line = proc.last_error_line()
    assert line.startswith("powerflex-etl: error:"), proc.stderr
    assert "certificate" in line and "did not verify" in line and https_sim.url in line
    assert "POWERFLEX_VERIFY_TLS" in line and "REQUESTS_CA_BUNDLE" in line
    assert "Traceback" not in proc.stderr
    assert https_sim.logins() == before  # the password never went to the unverified server
    assert not list((tmp_path / "lake").glob("evse_request/**/*.parquet"))


@pytest.mark.parametrize("how", ["verify-off", "ca-bundle"])
def test_ingest_works_with_verification_off_or_the_ca_trusted(
    https_sim: HttpsSim, tmp_path: Path, how: str
):
    lake = tmp_path / "lake"
    if how == "verify-off":
        env = _env(https_sim, lake, POWERFLEX_VERIFY_TLS="false")
    else:
        env = _env(https_sim, lake, REQUESTS_CA_BUNDLE=str(https_sim.cert))
    proc = run_cli(ARGS, env)
    assert proc.returncode == 0, proc.stderr
    assert Lake(str(lake)).read("evse_request").num_rows > 0
    off_warning = "TLS certificate verification is off" in proc.stderr
    assert off_warning == (how == "verify-off")


@pytest.mark.parametrize("bad", ["other-name", "expired"])
def test_a_trusted_ca_does_not_excuse_a_wrong_name_or_an_expired_certificate(
    tmp_path: Path, bad: str, monkeypatch: pytest.MonkeyPatch
):
    if bad == "other-name":
        cert, key = make_cert(tmp_path, name="powerflex.example")
    else:
        cert, key = make_cert(tmp_path, expired=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with https_simulator(cert, key) as sim:
        s = Settings(base_url=sim.url, username="demo", password=PASSWORD)  # type: ignore[arg-type]
        with PowerflexClient(s) as c, pytest.raises(TLSVerificationError) as info:
            c.get_measurement_data("evse_request", T0, T1)
        assert sim.logins() == 0
    msg = info.value.one_line()
    assert "did not verify" in msg and "\n" not in msg
    assert ("mismatch" in msg) if bad == "other-name" else ("expired" in msg)
