"""TLS contexts from Argo's `TLSConfig` and secrets: the one place PEM material becomes an `ssl.SSLContext`.

PEM contents are read from secrets; a certificate/key pair passes through a 0600 temporary directory that is
removed at once (the ssl module loads key pairs only from files). Callers decide how errors are reported.
"""

from __future__ import annotations

import os
import ssl
import tempfile

from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import KeySelector, TLSConfig


def load_key_pair(context: ssl.SSLContext, secrets: Secrets, cert: KeySelector, key: KeySelector) -> None:
    """Load the PEM certificate and private key named by `cert` and `key` into `context`."""
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for path, ref in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.get(ref.name, ref.key))
        context.load_cert_chain(cert_path, key_path)


def client_context(tls: TLSConfig, secrets: Secrets) -> ssl.SSLContext:
    """A client context: trust `caCertSecret` (else the system store), present the client pair when both halves
    are set, and skip verification on `insecureSkipVerify`. Raises SecretNotFound, ssl.SSLError, ValueError."""
    ca = tls.ca_cert_secret
    context = ssl.create_default_context(cadata=secrets.get(ca.name, ca.key) if ca is not None else None)
    if tls.client_cert_secret is not None and tls.client_key_secret is not None:
        load_key_pair(context, secrets, tls.client_cert_secret, tls.client_key_secret)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_context(secrets: Secrets, cert: KeySelector, key: KeySelector) -> ssl.SSLContext:
    """A server context presenting the PEM pair `cert`/`key` (a webhook's `serverCertSecret`/`serverKeySecret`)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    load_key_pair(context, secrets, cert, key)
    return context
