"""Signs a MIME entity as an S/MIME message with Python's `cryptography` (not OpenSSL's CLI, not
our code), for `stamp verify` to check. Run by tests/tests/email_interop.rs.

    smime_sign.py detached|opaque KEY.pem CERT.pem EXTRA_CERT.pem ENTITY OUT [--header "N: V"]...

ENTITY is a MIME entity (its own Content-Type header, a blank line, the body), LF or CRLF line
ends: `cryptography` canonicalises it to CRLF before signing (no Binary option).
  detached  PKCS7SignatureBuilder.sign(Encoding.SMIME, [DetachedSignature]): multipart/signed
            exactly as `cryptography` writes it.
  opaque    PKCS7SignatureBuilder.sign(Encoding.DER, []): SignedData with the entity inside,
            wrapped here in application/pkcs7-mime; smime-type=signed-data (base64), because
            Encoding.SMIME always writes multipart/signed.
Each --header (From, To, Subject...) is written before the MIME headers, as a mail client does.
The signer uses SHA-256; EXTRA_CERT (the CA) is added to the certificates. Prints "OK <mode>
<key type>" or exits 1 with the reason.
"""

import argparse
import base64
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7


def fail(msg):
    print(f"smime_sign: {msg}", file=sys.stderr)
    sys.exit(1)


def opaque_message(der):
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 76] for i in range(0, len(b64), 76)]
    head = (
        "MIME-Version: 1.0\r\n"
        'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="smime.p7m"\r\n'
        "\r\n"
    )
    return (head + "\r\n".join(lines) + "\r\n").encode("ascii")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["detached", "opaque"])
    ap.add_argument("key")
    ap.add_argument("cert")
    ap.add_argument("extra_cert")
    ap.add_argument("entity")
    ap.add_argument("out")
    ap.add_argument("--header", action="append", default=[])
    args = ap.parse_args()

    key = serialization.load_pem_private_key(open(args.key, "rb").read(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key_type = f"ecdsa-{key.curve.name}"
    elif isinstance(key, rsa.RSAPrivateKey):
        key_type = f"rsa-{key.key_size}"
    else:
        fail(f"unsupported key {type(key).__name__}")
    cert = x509.load_pem_x509_certificate(open(args.cert, "rb").read())
    extra = x509.load_pem_x509_certificate(open(args.extra_cert, "rb").read())
    entity = open(args.entity, "rb").read()

    builder = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(entity)
        .add_signer(cert, key, hashes.SHA256())
        .add_certificate(extra)
    )
    if args.mode == "detached":
        body = builder.sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])
        if not body.startswith(b"MIME-Version:") or b"multipart/signed" not in body:
            fail(f"Encoding.SMIME did not write multipart/signed: {body[:200]!r}")
    else:
        body = opaque_message(builder.sign(serialization.Encoding.DER, []))
    headers = "".join(f"{h}\r\n" for h in args.header).encode("utf-8")
    with open(args.out, "wb") as f:
        f.write(headers + body)
    print(f"OK {args.mode} {key_type}")


if __name__ == "__main__":
    main()
