"""The Python peer of `tsa-bench --email`: sign and timestamp statements the way a bank's
script would with the well-known libraries, against the same authority.

For each file in IN_DIR: `cryptography`'s PKCS7SignatureBuilder signs it (detached, S/MIME
output, SHA-256), the SignerInfo's signature value is read back with pyasn1-modules,
`rfc3161-client` builds a request over it (nonce, certReq), the request goes over one HTTP/1.1
keep-alive connection, and the reply is checked by rfc3161-client's verifier (nonce, imprint,
signature, chain to ROOT). cryptography cannot add unsigned attributes, so the token is kept
beside the message rather than embedded: the peer does a little less work than `stamp`.

Usage: email_peer.py IN_DIR KEY CERT TSA_URL ROOT_PEM
Prints one JSON line: {"messages": N, "seconds": S} (the loop only, not interpreter start).
"""

import http.client
import json
import os
import sys
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from pyasn1.codec.der import decoder
from pyasn1_modules import rfc5652
from rfc3161_client import (
    PKIStatus,
    TimestampRequestBuilder,
    VerifierBuilder,
    decode_timestamp_response,
)


def main():
    in_dir, key_path, cert_path, url, root_path = sys.argv[1:6]
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    root = x509.load_pem_x509_certificate(open(root_path, "rb").read())
    target = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    path = target.path or "/"
    names = sorted(os.listdir(in_dir))
    start = time.perf_counter()
    for name in names:
        data = open(os.path.join(in_dir, name), "rb").read()
        signed = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(data)
            .add_signer(cert, key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature])
        )
        ci, _ = decoder.decode(signed, asn1Spec=rfc5652.ContentInfo())
        sd, _ = decoder.decode(ci["content"], asn1Spec=rfc5652.SignedData())
        signature = bytes(sd["signerInfos"][0]["signature"])
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
    seconds = time.perf_counter() - start
    print(json.dumps({"messages": len(names), "seconds": seconds}))


if __name__ == "__main__":
    main()
