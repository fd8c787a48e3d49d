"""Encrypts a MIME entity to an RSA certificate with Python `cryptography`'s
PKCS7EnvelopeBuilder (EnvelopedData, RSA PKCS#1 v1.5 key transport) and writes the S/MIME
message, for the interop test that `stamp email decrypt` reads it.

usage: smime_encrypt.py CERT.pem ENTITY OUT.eml aes128|aes256
"""

import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7


def main() -> None:
    cert_path, entity_path, out_path, cipher = sys.argv[1:5]
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(entity_path, "rb") as f:
        entity = f.read()
    algorithm = {"aes128": algorithms.AES128, "aes256": algorithms.AES256}[cipher]
    builder = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(entity)
        .add_recipient(cert)
        .set_content_encryption_algorithm(algorithm)
    )
    with open(out_path, "wb") as f:
        f.write(builder.encrypt(serialization.Encoding.SMIME, []))


if __name__ == "__main__":
    main()
