"""The local stack's certificate authority and the broker's certificate, made with openssl on first start.

The CA key stays in the state folder's ``secrets`` (mode 0700); clients trust ``ca.pem``. The broker's certificate
names ``localhost`` and ``127.0.0.1``, so clients verify the host name as well as the signature. Keys are PKCS#8
PEM, which Kafka's PEM keystore reads without keytool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from satubus.errors import SatuBusError

DAYS = 825


class TlsError(SatuBusError):
    pass


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise TlsError("openssl is needed to make the local stack's certificates: `apt-get install openssl`")
    result = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")


def ensure_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """``(ca.pem, broker.pem, broker-key.pem)`` in ``folder``, made if missing."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    ca, ca_key = folder / "ca.pem", folder / "ca-key.pem"
    cert, key = folder / "broker.pem", folder / "broker-key.pem"
    if not (ca.exists() and ca_key.exists()):
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ca_key.name, cwd=folder)
        _openssl(
            "req", "-x509", "-new", "-key", ca_key.name, "-out", ca.name, "-days", str(DAYS), "-sha256",
            "-subj", "/O=Satu Data Bus/CN=Satu Data Bus local CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=folder,
        )  # fmt: skip
        cert.unlink(missing_ok=True)  # signed by a CA that is gone
    if not (cert.exists() and key.exists()):
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key.name, cwd=folder)
        _openssl("req", "-new", "-key", key.name, "-out", "broker.csr", "-subj", "/CN=localhost", cwd=folder)
        (folder / "broker.ext").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
        )
        _openssl(
            "x509", "-req", "-in", "broker.csr", "-CA", ca.name, "-CAkey", ca_key.name, "-CAcreateserial",
            "-out", cert.name, "-days", str(DAYS), "-sha256", "-extfile", "broker.ext",
            cwd=folder,
        )  # fmt: skip
        for leftover in ("broker.csr", "broker.ext", "ca.srl"):
            (folder / leftover).unlink(missing_ok=True)
    for private in (ca_key, key):
        os.chmod(private, 0o600)
    return ca, cert, key
