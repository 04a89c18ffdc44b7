"""MQTT security end to end: username/password and TLS against a REAL private mosquitto.

Each test starts its own mosquitto (``services.start_mosquitto`` with a template derived from
config/mosquitto.conf plus extra lines), runs `urbanpulse run` as a subprocess, and publishes
from a separate process (paho, with credentials / TLS). Under CI=true anything unavailable
(mosquitto, mosquitto_passwd, openssl, PostgreSQL) fails via ``services.unavailable``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

import services
from service_process import ServiceProcess, readings_count, wait_until
from test_delivery_e2e import BASE_MS, readings, service_config

pytestmark = pytest.mark.integration

USER, PASSWORD = "ingest", "s3cret-pa55"
N = 300  # readings per publish: enough to see a real stream, small enough to stay fast

# --------------------------------------------------------------------------------------------
# helpers


def _need_binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        services.unavailable(f"`{name}` not installed (apt-get install mosquitto mosquitto-clients openssl)")
    return path


def _template(tmp_path: Path, drop: tuple[str, ...] = ()) -> Path:
    """config/mosquitto.conf without the options in ``drop`` (re-set them via ``extra``)."""
    lines = [line for line in services.MOSQUITTO_CONF.read_text().splitlines()
             if not (line.split("#", 1)[0].split()[:1] and line.split("#", 1)[0].split()[0] in drop)]
    path = tmp_path / "mosquitto.template.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def _start_broker(workdir: Path, template: Path, extra: list[str]) -> services.Mosquitto:
    try:
        return services.start_mosquitto(workdir, template=template, extra=extra)
    except Exception as exc:  # noqa: BLE001
        services.unavailable(f"cannot start a private mosquitto: {exc}")
        raise  # unreachable


_PUBLISH_SCRIPT = r"""
import json, ssl, sys, time
import paho.mqtt.client as mqtt
spec = json.load(sys.stdin)
c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                client_id=spec["client_id"], protocol=mqtt.MQTTv311, clean_session=True)
c.max_inflight_messages_set(100)
c.max_queued_messages_set(0)
if spec["username"] is not None:
    c.username_pw_set(spec["username"], spec["password"])
if spec["ca_file"] is not None:
    c.tls_set(ca_certs=spec["ca_file"], cert_reqs=ssl.CERT_REQUIRED)
connack = []
c.on_connect = lambda client, userdata, flags, reason, props: connack.append(reason)
c.connect(spec["host"], spec["port"], keepalive=30)
c.loop_start()
deadline = time.monotonic() + spec["timeout"]
while not connack:
    if time.monotonic() > deadline:
        print("no CONNACK", file=sys.stderr); sys.exit(1)
    time.sleep(0.01)
if connack[0].is_failure:
    print(f"connect refused: {connack[0]}", file=sys.stderr); sys.exit(2)
infos = [c.publish(spec["topic"], bytes.fromhex(p), qos=1) for p in spec["payloads"]]
for info in infos:
    while not info.is_published():
        if time.monotonic() > deadline:
            print("publish timed out", file=sys.stderr); sys.exit(1)
        time.sleep(0.01)
c.disconnect()
c.loop_stop()
"""


def publish(broker: services.Mosquitto, payloads: list[bytes], *, username: str | None = None,
            password: str | None = None, ca_file: Path | None = None, topic: str = "city/secure/test",
            timeout: float = 60.0) -> subprocess.CompletedProcess:
    """QoS 1 publish from a separate paho process, with credentials and/or TLS; returns when
    every PUBACK arrived (rc 0), rc 2 if the broker refused the connection."""
    spec = {"host": broker.host, "port": broker.port, "topic": topic, "payloads": [p.hex() for p in payloads],
            "username": username, "password": password, "ca_file": None if ca_file is None else str(ca_file),
            "client_id": f"up-test-secpub-{uuid.uuid4().hex[:8]}", "timeout": timeout}
    return subprocess.run([sys.executable, "-c", _PUBLISH_SCRIPT], input=json.dumps(spec), text=True,
                          capture_output=True, timeout=timeout + 30)


def publish_ok(broker: services.Mosquitto, payloads: list[bytes], **kw: object) -> None:
    r = publish(broker, payloads, **kw)
    assert r.returncode == 0, f"publisher failed (rc={r.returncode}): {r.stderr}\nbroker log:\n{services._tail(broker.log)}"


def mqtt_health(svc: ServiceProcess) -> tuple[int, dict]:
    r = svc.health()
    return r.status_code, r.json()["brokers"]["mqtt"]


def secure_config(dsn: str, broker: services.Mosquitto, protocol: str = "3.1.1", **mqtt: object) -> dict:
    cfg = service_config(dsn, broker, None, None, mqtt_protocol=protocol, batch_max_ms=50)
    cfg["mqtt"].update(mqtt)
    cfg["mqtt"]["topics"] = ["city/#"]
    return cfg


def assert_stays_disconnected(svc: ServiceProcess, seconds: float = 3.0) -> dict:
    """/health is 503 with mqtt not connected, throughout ``seconds``; the process stays up."""
    deadline = time.monotonic() + seconds
    mqtt = {}
    while time.monotonic() < deadline:
        assert svc.proc is not None and svc.proc.poll() is None, f"service exited:\n{svc.log_tail()}"
        status, mqtt = mqtt_health(svc)
        assert status == 503, (status, mqtt)
        assert mqtt["connected"] is False, mqtt
        time.sleep(0.25)
    return mqtt


# --------------------------------------------------------------------------------------------
# 1. username / password


@pytest.fixture
def auth_broker(tmp_path: Path) -> services.Mosquitto:
    passwd = _need_binary("mosquitto_passwd")
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd, "-b", "-c", str(pwfile), USER, PASSWORD], check=True, timeout=30,
                   capture_output=True)
    pwfile.chmod(0o600)
    broker = _start_broker(tmp_path / "mosquitto-auth", _template(tmp_path, drop=("allow_anonymous",)),
                           ["allow_anonymous false", f"password_file {pwfile}"])
    try:
        yield broker
    finally:
        broker.stop()


def test_broker_really_requires_credentials(auth_broker: services.Mosquitto) -> None:
    """Guard: the test broker refuses anonymous and wrong-password clients (else the tests
    below would prove nothing)."""
    payload = readings("guard", 1)
    anon = publish(auth_broker, payload)
    assert anon.returncode == 2 and "refused" in anon.stderr, anon.stderr
    wrong = publish(auth_broker, payload, username=USER, password="wrong")
    assert wrong.returncode == 2 and "refused" in wrong.stderr, wrong.stderr
    publish_ok(auth_broker, payload, username=USER, password=PASSWORD)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_right_credentials_store_readings(fresh_db: str, auth_broker: services.Mosquitto, tmp_path: Path,
                                          protocol: str) -> None:
    svc = ServiceProcess(secure_config(fresh_db, auth_broker, protocol, username=USER, password=PASSWORD),
                         tmp_path).start()
    try:
        status, mqtt = mqtt_health(svc)
        assert status == 200 and mqtt["connected"] is True and mqtt["last_error"] is None, mqtt
        publish_ok(auth_broker, readings(f"auth{protocol}", N), username=USER, password=PASSWORD)
        wait_until(lambda: readings_count(fresh_db) >= N, 60, what=f"{N} readings stored")
        assert svc.terminate() == 0  # a clean stop stores everything received first
        assert readings_count(fresh_db) == N
    finally:
        svc.stop_quietly()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
@pytest.mark.parametrize("creds", [{"username": USER, "password": "wrong"}, {}], ids=["wrong-password", "anonymous"])
def test_refused_credentials_are_reported_then_fixed_credentials_work(
        fresh_db: str, auth_broker: services.Mosquitto, tmp_path: Path, protocol: str, creds: dict) -> None:
    cfg = secure_config(fresh_db, auth_broker, protocol, **creds)
    bad = ServiceProcess(cfg, tmp_path).start(require_healthy=False)
    try:
        # The refusal must become visible: 503, not connected, last_error naming the refusal.
        def refused() -> object:
            status, mqtt = mqtt_health(bad)
            return status == 503 and mqtt["connected"] is False and mqtt["last_error"] and mqtt
        wait_until(refused, 20, what="/health to report the refused MQTT connection")
        mqtt = assert_stays_disconnected(bad, 3.0)  # retries with backoff, never crashes
        body = bad.health().json()
        assert body["database"]["ok"] is True, body  # only the broker is degraded
        log = bad.log_tail()
        assert "Not authorized" in log or "Bad user name or password" in log, log
        assert "Traceback" not in log, log
        # Checked at the end, so the "fixed password" half below still runs if this is wrong.
        err = str(mqtt["last_error"])
        refusal_named = any(s in err for s in ("Not authorized", "Bad user name or password"))
        assert bad.terminate() == 0
    finally:
        bad.stop_quietly()

    # Fix the password (new process, same client id): connects and stores.
    cfg["mqtt"].update(username=USER, password=PASSWORD)
    good = ServiceProcess(cfg, tmp_path).start()
    try:
        status, mqtt = mqtt_health(good)
        assert status == 200 and mqtt["connected"] is True, mqtt
        publish_ok(auth_broker, readings("fixed", N), username=USER, password=PASSWORD)
        wait_until(lambda: readings_count(fresh_db) >= N, 60, what=f"{N} readings after fixing the password")
        assert good.terminate() == 0  # a clean stop stores everything received first
        assert readings_count(fresh_db) == N
    finally:
        good.stop_quietly()

    assert refusal_named, (f"/health brokers.mqtt.last_error does not name the broker's refusal: {err!r} "
                           f"(the log does: {[ln for ln in log.splitlines() if 'refused' in ln][:1]})")


# --------------------------------------------------------------------------------------------
# 2. TLS


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run([_need_binary("openssl"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)} failed:\n{r.stderr}"


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN=urbanpulse test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=d)
    return key, crt


def make_server_cert(d: Path, ca_key: Path, ca_crt: Path) -> tuple[Path, Path]:
    key, csr, crt, ext = d / "server.key", d / "server.csr", d / "server.crt", d / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost", cwd=d)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(crt), "-days", "2", "-extfile", str(ext), cwd=d)
    return key, crt


class TlsBroker:
    def __init__(self, broker: services.Mosquitto, ca: Path, other_ca: Path) -> None:
        self.broker, self.ca, self.other_ca = broker, ca, other_ca


@pytest.fixture
def tls_broker(tmp_path: Path) -> TlsBroker:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca_key, ca_crt = make_ca(pki, "ca")
    _, other_ca = make_ca(pki, "other-ca")  # a CA that did NOT sign the server certificate
    srv_key, srv_crt = make_server_cert(pki, ca_key, ca_crt)
    for p in pki.iterdir():  # mosquitto may run as another user; only test material in here
        p.chmod(0o644)
    pki.chmod(0o755)
    # The listener line is rewritten by render_mosquitto_conf; these listener options follow
    # at the end of the file and so apply to that (only) listener.
    broker = _start_broker(tmp_path / "mosquitto-tls", services.MOSQUITTO_CONF,
                           [f"cafile {ca_crt}", f"certfile {srv_crt}", f"keyfile {srv_key}",
                            "tls_version tlsv1.2"])
    try:
        yield TlsBroker(broker, ca_crt, other_ca)
    finally:
        broker.stop()


def test_broker_really_requires_tls(tls_broker: TlsBroker) -> None:
    """Guard: plain MQTT is not accepted on the TLS listener; the CA-verified client is."""
    payload = readings("guard", 1)
    plain = publish(tls_broker.broker, payload, timeout=5)
    assert plain.returncode != 0, "plain MQTT was accepted on the TLS listener"
    publish_ok(tls_broker.broker, payload, ca_file=tls_broker.ca)
    # mosquitto_pub, a client we did not write, also verifies the chain and the IP SAN
    pub = _need_binary("mosquitto_pub")
    subprocess.run([pub, "--cafile", str(tls_broker.ca), "-h", "127.0.0.1", "-p", str(tls_broker.broker.port),
                    "-q", "1", "-t", "city/guard/cli", "-m", "x"], check=True, timeout=30)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_tls_with_the_ca_stores_readings(fresh_db: str, tls_broker: TlsBroker, tmp_path: Path,
                                         protocol: str) -> None:
    cfg = secure_config(fresh_db, tls_broker.broker, protocol, tls={"enabled": True, "ca_file": str(tls_broker.ca)})
    svc = ServiceProcess(cfg, tmp_path).start()
    try:
        status, mqtt = mqtt_health(svc)
        assert status == 200 and mqtt["connected"] is True and mqtt["last_error"] is None, mqtt
        publish_ok(tls_broker.broker, readings(f"tls{protocol}", N), ca_file=tls_broker.ca)
        one = orjson.dumps({"sensor_id": "tls-cli", "metric": "noise_db", "ts": BASE_MS, "value": 50.5}).decode()
        subprocess.run([_need_binary("mosquitto_pub"), "--cafile", str(tls_broker.ca), "-h", "127.0.0.1",
                        "-p", str(tls_broker.broker.port), "-q", "1", "-t", "city/tls/cli", "-m", one],
                       check=True, timeout=30)
        wait_until(lambda: readings_count(fresh_db) >= N + 1, 60, what=f"{N + 1} readings stored over TLS")
        assert svc.terminate() == 0  # a clean stop stores everything received first
        assert readings_count(fresh_db) == N + 1
    finally:
        svc.stop_quietly()


TLS_ERROR_MARKERS = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "SSLError", "SSL:", "certificate")


@pytest.mark.parametrize("trust", ["system-store", "other-ca"])
def test_tls_without_the_right_ca_does_not_connect(fresh_db: str, tls_broker: TlsBroker, tmp_path: Path,
                                                   trust: str) -> None:
    tls: dict = {"enabled": True}
    if trust == "other-ca":
        tls["ca_file"] = str(tls_broker.other_ca)
    svc = ServiceProcess(secure_config(fresh_db, tls_broker.broker, tls=tls), tmp_path).start(require_healthy=False)
    try:
        mqtt = assert_stays_disconnected(svc, 4.0)
        # Nothing published over TLS reaches a service that does not trust the broker.
        publish_ok(tls_broker.broker, readings("untrusted", 20), ca_file=tls_broker.ca)
        mqtt = assert_stays_disconnected(svc, 2.0)
        assert readings_count(fresh_db) == 0
        # The service did try, and its certificate check rejected the broker ("unknown ca" alert).
        wait_until(lambda: "unknown ca" in services._tail(tls_broker.broker.log, 100_000), 10,
                   what="the broker to log the service's TLS rejection (alert unknown ca)")
        # ... and the operator can tell why: the certificate error is in last_error or the log.
        evidence = f"{mqtt.get('last_error')}\n{svc.log_tail()}"
        assert any(m in evidence for m in TLS_ERROR_MARKERS), \
            f"no TLS/certificate error visible (last_error={mqtt.get('last_error')!r}); log:\n{svc.log_tail()}"
        assert "Traceback" not in svc.log_tail(), svc.log_tail()
        assert svc.terminate() == 0
    finally:
        svc.stop_quietly()
