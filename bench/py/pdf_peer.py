"""The Python peer of `tsa-bench --pdf`: pyHanko (the reference PAdES implementation) signing at
B-T against the same authority, and validating, as a publisher's or an auditor's script would.

    pdf_peer.py sign IN.pdf OUT.pdf KEY CERT TSA_URL
    pdf_peer.py verify IN.pdf CA_PEM TSA_ROOT_PEM

`sign`: PdfSigner with SimpleSigner, HTTPTimeStamper and the PAdES subfilter, written with
IncrementalPdfFileWriter (pyHanko reads the whole file and writes the update after it).
`verify`: validate_pdf_signature of every signature, with the roots given and no fetching.
Prints one JSON line: {"seconds": S} (the work only, not interpreter start and imports).
"""

import json
import sys
import time

from pyhanko.keys import load_certs_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext


def sign(src, dst, key, cert, url):
    signer = signers.SimpleSigner.load(key, cert)
    started = time.perf_counter()
    with open(src, "rb") as inf, open(dst, "wb") as outf:
        w = IncrementalPdfFileWriter(inf)
        meta = signers.PdfSignatureMetadata(
            field_name="Signature1", subfilter=fields.SigSeedSubFilter.PADES
        )
        signers.PdfSigner(meta, signer=signer, timestamper=HTTPTimeStamper(url)).sign_pdf(
            w, output=outf
        )
    return time.perf_counter() - started


def verify(src, ca, tsa_root):
    roots = list(load_certs_from_pemder([ca, tsa_root]))
    started = time.perf_counter()
    with open(src, "rb") as f:
        r = PdfFileReader(f)
        for s in r.embedded_signatures:
            vc = ValidationContext(trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail")
            status = validate_pdf_signature(s, vc)
            if not (status.intact and status.valid and status.trusted):
                raise SystemExit(f"pyHanko does not validate {s.field_name}: {status.summary()}")
    return time.perf_counter() - started


if __name__ == "__main__":
    if sys.argv[1] == "sign":
        secs = sign(*sys.argv[2:7])
    else:
        secs = verify(*sys.argv[2:5])
    print(json.dumps({"seconds": secs}))
