"""The launcher's errors tell the user what to do; these cases need no running service."""

import socket
from pathlib import Path

import pytest

from satubus.deploy.local.stack import Kafka, Layout, StackError, find_java
from satubus.settings import Settings


def test_a_port_in_use_names_the_port_and_the_setting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        kafka = Kafka(Settings(kafka_bootstrap=f"127.0.0.1:{port}"), Layout(tmp_path))
        with pytest.raises(StackError, match=rf"port {port} .* already in use.*SATUBUS_KAFKA_BOOTSTRAP"):
            kafka.start()


def test_a_missing_jdk_says_what_to_install() -> None:
    with pytest.raises(StackError, match=r"no Java 99 or newer found.*Install a JDK 99.*SATUBUS_KAFKA_JAVA"):
        find_java(minimum=99, prefer=None, override_env="SATUBUS_KAFKA_JAVA", install="a JDK 99")


def test_a_wrong_java_override_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SATUBUS_KAFKA_JAVA", str(tmp_path / "no-such-java"))
    with pytest.raises(StackError, match=r"SATUBUS_KAFKA_JAVA=.* is not a Java 17"):
        find_java(minimum=17, prefer=17, override_env="SATUBUS_KAFKA_JAVA", install="a JDK 17")


def test_the_stack_refuses_non_loopback_addresses() -> None:
    from satubus.deploy.local.stack import Stack

    with pytest.raises(StackError, match="loopback only"):
        Stack.from_settings(Settings(kafka_bootstrap="10.0.0.5:9092"))


def test_stack_status_reads_each_process_health_ready_unhealthy_or_not_running() -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from satubus.deploy.local.stack import process_health
    from satubus.settings import Settings

    answers = {"/health": (503, {"status": "unhealthy", "problems": [{"name": "broker", "detail": "no answer"}]})}

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = answers[self.path]
            self.send_response(code)
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            pass

    unhealthy = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=unhealthy.serve_forever, daemon=True).start()
    nobody = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    free = nobody.server_address[1]
    nobody.server_close()  # a port nothing listens on
    try:
        settings = Settings(stream_metrics_port=unhealthy.server_address[1], materializer_metrics_port=free)
        found = {name: health for name, _, health in process_health(settings)}
        assert found["stream"] == "unhealthy: no answer"
        assert found["materialize"] == "not running"
        answers["/health"] = (200, {"status": "ok", "problems": []})
        assert dict((n, h) for n, _, h in process_health(settings))["stream"] == "ok"
    finally:
        unhealthy.shutdown()
        unhealthy.server_close()
