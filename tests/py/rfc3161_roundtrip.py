#!/usr/bin/env python3
"""Round trips between Sigillum's `tsa serve` and RFC 3161 clients from PyPI.

Run by tests/tests/pypi_client.rs; prints one line per check and exits non-zero on the first
failure, with the reason.

  rfc3161_roundtrip.py client URL ROOT_PEM TSA_PEM DATA OUT_DIR
      rfc3161-client (Trail of Bits): TimestampRequestBuilder -> POST (urllib) ->
      decode_timestamp_response -> Verifier against ROOT_PEM, for SHA-256 and SHA-512, with and
      without certReq (without: the TSA certificate is given to the verifier). Writes each
      reply to OUT_DIR/rfc3161-client-<hash>-<cert|nocert>.tsr for `stamp verify`.

  rfc3161_roundtrip.py ng URL TSA_PEM DATA OUT_DIR [--verify-signature]
      rfc3161ng, for what rfc3161-client cannot do: its TimestampRequestBuilder only offers
      SHA-256 and SHA-512, so SHA-384 requests come from rfc3161ng. rfc3161ng checks
      signatures with RSA PKCS#1 v1.5 only, and re-encodes the signed attributes with pyasn1's
      DER encoder before checking them: --verify-signature (for a server with an RSA key) also
      proves that our signed attributes are canonical DER. Writes
      OUT_DIR/rfc3161ng-<hash>-<cert|nocert>.tsr.
"""

import hashlib
import secrets
import sys
import urllib.error
import urllib.request

DEV_POLICY = "1.3.6.1.4.1.55555.1.1"


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def post(url, der):
    req = urllib.request.Request(
        url, data=der, method="POST", headers={"Content-Type": "application/timestamp-query"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            if resp.headers.get("Content-Type") != "application/timestamp-reply":
                fail(f"reply media type {resp.headers.get('Content-Type')!r}")
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run_client(url, root_pem, tsa_pem, data_path, out_dir):
    import cryptography.x509
    from rfc3161_client import (
        HashAlgorithm,
        PKIStatus,
        TimestampRequestBuilder,
        VerificationError,
        VerifierBuilder,
        decode_timestamp_response,
    )

    root = cryptography.x509.load_pem_x509_certificate(open(root_pem, "rb").read())
    tsa = cryptography.x509.load_pem_x509_certificate(open(tsa_pem, "rb").read())
    data = open(data_path, "rb").read()
    for alg, name, hasher in [
        (HashAlgorithm.SHA256, "sha256", hashlib.sha256),
        (HashAlgorithm.SHA512, "sha512", hashlib.sha512),
    ]:
        for cert_req in (True, False):
            label = f"rfc3161-client {name} {'cert' if cert_req else 'nocert'}"
            request = (
                TimestampRequestBuilder()
                .data(data)
                .hash_algorithm(alg)
                .nonce(nonce=True)
                .cert_request(cert_request=cert_req)
                .build()
            )
            status, body = post(url, request.as_bytes())
            if status != 200:
                fail(f"{label}: HTTP {status}")
            resp = decode_timestamp_response(body)
            if PKIStatus(resp.status) != PKIStatus.GRANTED:
                fail(f"{label}: status {resp.status} {resp.status_string}")
            info = resp.tst_info
            if info.nonce != request.nonce:
                fail(f"{label}: nonce {info.nonce} != {request.nonce}")
            if info.message_imprint.message != hasher(data).digest():
                fail(f"{label}: imprint")
            if info.policy.dotted_string != DEV_POLICY:
                fail(f"{label}: policy {info.policy.dotted_string}")
            if info.ordering:
                fail(f"{label}: ordering true")
            if info.accuracy.seconds != 1:
                fail(f"{label}: accuracy {info.accuracy.seconds}s")
            if (len(resp.signed_data.certificates) > 0) != cert_req:
                fail(f"{label}: {len(resp.signed_data.certificates)} certificates")

            builder = VerifierBuilder.from_request(request).add_root_certificate(root)
            if not cert_req:
                builder = builder.tsa_certificate(tsa)
            verifier = builder.build()
            try:
                verifier.verify_message(resp, data)
            except VerificationError as e:
                fail(f"{label}: rfc3161-client does not verify our token: {e}")
            try:
                verifier.verify_message(resp, data + b"tampered")
                fail(f"{label}: verified for other data")
            except VerificationError:
                pass
            # The same token under a verifier expecting another nonce must fail.
            wrong = VerifierBuilder(nonce=(request.nonce + 1)).add_root_certificate(root)
            if not cert_req:
                wrong = wrong.tsa_certificate(tsa)
            try:
                wrong.build().verify_message(resp, data)
                fail(f"{label}: verified with the wrong nonce")
            except VerificationError:
                pass
            out = f"{out_dir}/rfc3161-client-{name}-{'cert' if cert_req else 'nocert'}.tsr"
            open(out, "wb").write(resp.as_bytes())
            print(f"ok: {label} -> {out}", flush=True)


def run_ng(url, tsa_pem, data_path, out_dir, verify_signature):
    import rfc3161ng
    from pyasn1.codec.der import encoder

    tsa = open(tsa_pem, "rb").read()
    data = open(data_path, "rb").read()
    for name in ("sha384", "sha256", "sha512"):
        for cert_req in (True, False):
            label = f"rfc3161ng {name} {'cert' if cert_req else 'nocert'}"
            digest = hashlib.new(name, data).digest()
            nonce = secrets.randbits(63)
            # make_timestamp_request(data=...) would hash with SHA-1 whatever hashname says;
            # pass the digest.
            request = rfc3161ng.make_timestamp_request(
                digest=digest, hashname=name, include_tsa_certificate=cert_req, nonce=nonce
            )
            status, body = post(url, rfc3161ng.encode_timestamp_request(request))
            if status != 200:
                fail(f"{label}: HTTP {status}")
            resp = rfc3161ng.decode_timestamp_response(body)
            if int(resp["status"]["status"]) != 0:
                fail(f"{label}: not granted: {resp['status']}")
            token = resp.time_stamp_token
            info = token.tst_info
            if int(info["nonce"]) != nonce:
                fail(f"{label}: nonce")
            if bytes(info.message_imprint.hashed_message) != digest:
                fail(f"{label}: imprint")
            if str(info["policy"]) != DEV_POLICY:
                fail(f"{label}: policy {info['policy']}")
            if verify_signature:
                try:
                    rfc3161ng.check_timestamp(
                        encoder.encode(token), certificate=tsa, data=data, hashname=name, nonce=nonce
                    )
                except Exception as e:  # noqa: BLE001 - any failure is the finding
                    fail(f"{label}: rfc3161ng check_timestamp failed: {type(e).__name__}: {e}")
                try:
                    rfc3161ng.check_timestamp(
                        encoder.encode(token), certificate=tsa, data=data + b"x", hashname=name
                    )
                    fail(f"{label}: check_timestamp accepted other data")
                except ValueError:
                    pass
            out = f"{out_dir}/rfc3161ng-{name}-{'cert' if cert_req else 'nocert'}.tsr"
            open(out, "wb").write(body)
            print(f"ok: {label} -> {out}", flush=True)


def main(argv):
    if len(argv) >= 7 and argv[1] == "client":
        run_client(*argv[2:7])
    elif len(argv) >= 6 and argv[1] == "ng":
        run_ng(*argv[2:6], verify_signature="--verify-signature" in argv[6:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main(sys.argv)
