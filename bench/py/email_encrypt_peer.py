"""The Python peer of `tsa-bench --email-encrypt`: sign, timestamp and encrypt statements, then
decrypt them, the way a bank's script would with the well-known libraries, against the same
authority.

Phase 1, for each file in IN_DIR: `cryptography`'s PKCS7SignatureBuilder signs it (detached,
S/MIME output, SHA-256); the signature value is read back from the smime.p7s part with
pyasn1-modules; `rfc3161-client` builds a request over it (nonce, certReq), the request goes
over one HTTP/1.1 keep-alive connection, and the reply is checked by rfc3161-client's verifier
(nonce, imprint, signature, chain to ROOT), as bench/py/email_peer.py does. cryptography cannot
add unsigned attributes, so the token is kept beside the message, not embedded. Then
PKCS7EnvelopeBuilder encrypts the signed S/MIME entity (EnvelopedData, AES-256-CBC) to the
RSA recipient only: cryptography encrypts to RSA keys alone (no key agreement), so the peer
does one key transport per message where `stamp` does an RSA transport and an ECDH agreement.
Nothing is written to disk.

Phase 2: `pkcs7_decrypt_smime` with the RSA key over every message of phase 1, each compared
with the signed entity it came from.

Usage: email_encrypt_peer.py IN_DIR KEY CERT TSA_URL ROOT_PEM RSA_CERT RSA_KEY
Prints one JSON line: {"messages": N, "encrypt_seconds": S1, "decrypt_seconds": S2} (the loops
only, not interpreter start), one thread.
"""

import base64
import http.client
import json
import os
import re
import sys
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from pyasn1.codec.der import decoder
from pyasn1_modules import rfc5652
from rfc3161_client import (
    PKIStatus,
    TimestampRequestBuilder,
    VerifierBuilder,
    decode_timestamp_response,
)

# The end of a part's header: a blank line (cryptography writes CRLF line ends).
BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def signature_value(smime):
    """The SignerInfo's signature value of cryptography's detached S/MIME output."""
    part = smime.index(b'filename="smime.p7s"')
    start = BLANK_LINE.search(smime, part).end()
    end = smime.index(b"\n--", start)
    der = base64.b64decode(smime[start:end])
    ci, _ = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())
    sd, _ = decoder.decode(ci["content"], asn1Spec=rfc5652.SignedData())
    return bytes(sd["signerInfos"][0]["signature"])


def main():
    in_dir, key_path, cert_path, url, root_path, rsa_cert_path, rsa_key_path = sys.argv[1:8]
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    root = x509.load_pem_x509_certificate(open(root_path, "rb").read())
    rsa_cert = x509.load_pem_x509_certificate(open(rsa_cert_path, "rb").read())
    rsa_key = serialization.load_pem_private_key(open(rsa_key_path, "rb").read(), None)
    target = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    path = target.path or "/"
    names = sorted(os.listdir(in_dir))

    start = time.perf_counter()
    signed_all = []
    encrypted_all = []
    for name in names:
        data = open(os.path.join(in_dir, name), "rb").read()
        signed = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(data)
            .add_signer(cert, key, hashes.SHA256())
            .sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])
        )
        signature = signature_value(signed)
        request = TimestampRequestBuilder().data(signature).nonce(nonce=True).build()
        conn.request(
            "POST",
            path,
            body=request.as_bytes(),
            headers={"Content-Type": "application/timestamp-query"},
        )
        reply = conn.getresponse()
        body = reply.read()
        if reply.status != 200:
            sys.exit(f"{name}: HTTP {reply.status}")
        resp = decode_timestamp_response(body)
        if PKIStatus(resp.status) != PKIStatus.GRANTED:
            sys.exit(f"{name}: status {resp.status}")
        VerifierBuilder.from_request(request).add_root_certificate(root).build().verify_message(
            resp, signature
        )
        encrypted = (
            pkcs7.PKCS7EnvelopeBuilder()
            .set_data(signed)
            .add_recipient(rsa_cert)
            .set_content_encryption_algorithm(algorithms.AES256)
            .encrypt(serialization.Encoding.SMIME, [])
        )
        signed_all.append(signed)
        encrypted_all.append(encrypted)
    encrypt_seconds = time.perf_counter() - start

    start = time.perf_counter()
    for name, signed, encrypted in zip(names, signed_all, encrypted_all):
        plain = pkcs7.pkcs7_decrypt_smime(encrypted, rsa_cert, rsa_key, [])
        # Encryption in S/MIME mode canonicalises line ends; compare modulo them.
        if plain.replace(b"\r\n", b"\n") != signed.replace(b"\r\n", b"\n"):
            sys.exit(f"{name}: decrypted text differs from the signed message")
    decrypt_seconds = time.perf_counter() - start

    print(
        json.dumps(
            {
                "messages": len(names),
                "encrypt_seconds": encrypt_seconds,
                "decrypt_seconds": decrypt_seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
