#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_ca (corpus/fuzz_ca/): PEM files as operators hand them to the
agent, good and bad. The harness checks them at 2030-01-01, so the dates below are fixed around
that day and the files never expire in the repository. Run again only to change the corpus:
    python3 tests/fuzz/make-ca-corpus.py   (needs python3-cryptography)
"""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_ca")
NOW = datetime.datetime(2030, 1, 1)


def key():
    return ec.generate_private_key(ec.SECP256R1())


def name(cn, org="Home"):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def cert(subject, subject_key, issuer=None, issuer_key=None, ca=True, start=None, end=None,
         ski=True):
    issuer = issuer or subject
    issuer_key = issuer_key or subject_key
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start or datetime.datetime(2025, 1, 1))
         .not_valid_after(end or datetime.datetime(2125, 1, 1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def pem(c):
    return c.public_bytes(serialization.Encoding.PEM)


def write(filename, data):
    with open(os.path.join(OUT, filename), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    root_key = key()
    root = cert(name("Home Lab Root CA"), root_key)
    write("ca.pem", pem(root))
    inter_key = key()
    inter = cert(name("Home Lab Issuing CA"), inter_key, root.subject, root_key)
    write("chain.pem", pem(inter) + pem(root))
    server_key = key()
    server = cert(name("harbor.home.lab"), server_key, inter.subject, inter_key, ca=False)
    write("server-signed-by-ca.pem", pem(server))
    write("self-signed-server.pem", pem(cert(name("harbor.home.lab"), server_key, ca=False)))
    write("expired.pem", pem(cert(name("Old CA"), key(), end=datetime.datetime(2029, 6, 1))))
    write("not-yet-valid.pem",
          pem(cert(name("Future CA"), key(), start=datetime.datetime(2031, 1, 1))))
    write("expires-in-10-days.pem",
          pem(cert(name("Soon CA"), key(), end=NOW + datetime.timedelta(days=10))))
    write("utf8-subject.pem", pem(cert(name("Müller Ürzeit CA", "Gärtnerei"), key())))
    write("with-comments.pem", b"# the Harbor CA, from the Harbor UI\nsubject=CN=Home Lab Root CA\n"
          + pem(root) + b"\ntrailing text\n")
    write("crlf.pem", pem(root).replace(b"\n", b"\r\n"))
    write("ca.der", root.public_bytes(serialization.Encoding.DER))
    write("with-private-key.pem", pem(root) + root_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    write("ec-parameters.pem",
          b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" +
          pem(root))
    trusted = pem(root).replace(b"BEGIN CERTIFICATE", b"BEGIN TRUSTED CERTIFICATE").replace(
        b"END CERTIFICATE", b"END TRUSTED CERTIFICATE")
    write("trusted-certificate.pem", trusted)
    write("empty.pem", b"")
    write("truncated.pem", pem(root)[:300])


if __name__ == "__main__":
    main()
