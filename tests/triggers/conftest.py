"""Test certificates, made with the openssl CLI: a CA, and a server and a client certificate it signed (for
127.0.0.1 and localhost); `tls_secrets` holds the PEM texts as the secret `tls` (keys `ca.pem`, `client.pem`,
`client.key`). A test that uses them needs the openssl CLI and is an integration test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sensorium.engine.core.secrets import Secrets, env_name


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=sensorium-test-ca", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
    return d


@pytest.fixture(scope="module")
def tls_secrets(pki: Path) -> Secrets:
    return Secrets(environ={env_name("tls", key): (pki / f"{key}").read_text()
                            for key in ("ca.pem", "client.pem", "client.key")})
