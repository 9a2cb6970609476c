"""The site's own certificate authority, and the broker's certificate it signs.

MQTT crosses public mobile networks (trucks) and the port's LAN (gates): in clear, a
listener reads every plate, weight and broker password. So every portwatch broker has a
TLS listener whose certificate is signed by a CA the site makes for itself, and every
client (agent, controller, tools) pins that CA: no public CA, no system trust store, so a
certificate bought elsewhere for the same name is refused.

Where things live (the CA next to the store, like the ledger's key)::

    <store>.ca/ca.pem        the site CA's certificate (public: agents pin it)
    <store>.ca/ca.key        its private key, mode 0600, directory 0700
    <broker dir>/tls/        ca.pem, server.pem, server.key (0600, the broker's user)

Keys are ECDSA P-256: the smallest that MicroPython's mbedTLS verifies quickly (the
agent's handshake takes ~60 ms and ~3.5 KB of its heap, README: Firmware heap). The CA
is valid for 10 years; the broker's certificate for 825 days and names the hosts and
addresses the clients dial (``--tls-host``). :func:`server_cert_current` tells when it
must be issued again (missing, other hosts, another CA, or under 30 days left).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_DAYS = 30  # a server certificate with less left is issued again
DEMO_HOSTS = ("127.0.0.1", "localhost")
TLS_PORT = 8883  # the IANA port of MQTT over TLS


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """The three files a TLS listener needs."""

    ca: Path
    cert: Path
    key: Path


def ca_dir_for(db_path: Path) -> Path:
    """Where the site CA of the store at ``db_path`` lives."""
    return Path(f"{Path(db_path).absolute()}.ca")


def _write(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Write by rename with ``mode`` (and ``owner``) set before the file is visible."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        if owner is not None:
            os.fchown(f.fileno(), *owner)
        os.fchmod(f.fileno(), mode)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def ensure_ca(ca_dir: Path, *, site: str) -> Path:
    """The site CA's certificate path, creating the CA (key 0600) when there is none."""
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    if cert_path.exists() and key_path.exists():
        return cert_path
    if cert_path.exists() or key_path.exists():
        raise ValueError(f"{ca_dir} holds half a CA (one of {CA_CERT}, {CA_KEY}): restore the "
                         "other from backup; a new CA would lock out every device")
    ca_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_dir.chmod(0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"portwatch site CA {site}"[:64])])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path


def ca_der(ca_cert: Path) -> bytes:
    """The CA certificate in DER, as agents pin it (``mqtt.tls_ca_hex``)."""
    return x509.load_pem_x509_certificate(ca_cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)


def check_hosts(hosts: tuple[str, ...]) -> None:
    """ValueError naming the first of ``hosts`` that cannot go into a certificate."""
    if not hosts:
        raise ValueError("the broker's certificate needs at least one --tls-host")
    for host in hosts:
        if _is_ip(host):
            continue
        if not host or len(host) > 253 or any(ch.isspace() or ch in "/:@*" for ch in host):
            raise ValueError(f"--tls-host {host!r} is neither a host name nor an address")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _san(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    check_hosts(hosts)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def server_cert_current(tls: BrokerTls, ca_cert: Path, hosts: tuple[str, ...]) -> bool:
    """True when ``tls.cert`` exists, is signed by ``ca_cert``, names exactly ``hosts`` and
    has over RENEW_DAYS left."""
    if not (tls.cert.exists() and tls.key.exists() and tls.ca.exists()):
        return False
    cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    if tls.ca.read_bytes() != ca_cert.read_bytes() or cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):  # signed by another key: reissue
        return False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if set(san) != set(_san(hosts)):
        return False
    return cert.not_valid_after_utc - _now() > datetime.timedelta(days=RENEW_DAYS)


def issue_server_cert(ca_dir: Path, out_dir: Path, hosts: tuple[str, ...], *,
                      owner: tuple[int, int] | None = None,
                      days: int = SERVER_DAYS) -> BrokerTls:
    """Sign a new broker certificate for ``hosts`` into ``out_dir`` (ca.pem, server.pem,
    server.key 0600 given to ``owner``); return the three paths."""
    check_hosts(hosts)
    ca_cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_dir / CA_KEY} is not the EC key portwatch makes")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir.chmod(0o755)
    tls = BrokerTls(out_dir / CA_CERT, out_dir / SERVER_CERT, out_dir / SERVER_KEY)
    _write(tls.key, _key_pem(key), 0o600, owner)
    _write(tls.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644, owner)
    _write(tls.ca, (ca_dir / CA_CERT).read_bytes(), 0o644, owner)
    return tls


def broker_tls(ca_dir: Path, out_dir: Path, hosts: tuple[str, ...], *, site: str,
               owner: tuple[int, int] | None = None) -> tuple[BrokerTls, bool]:
    """The broker's TLS files in ``out_dir``, issued (and the CA made) when needed; also
    whether a new certificate was issued (the broker reads it at its next SIGHUP)."""
    ca_cert = ensure_ca(ca_dir, site=site)
    tls = BrokerTls(out_dir / CA_CERT, out_dir / SERVER_CERT, out_dir / SERVER_KEY)
    if server_cert_current(tls, ca_cert, hosts):
        if owner is not None:
            for path in (tls.ca, tls.cert, tls.key):
                os.chown(path, *owner)
        return tls, False
    return issue_server_cert(ca_dir, out_dir, hosts, owner=owner), True
