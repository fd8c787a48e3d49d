"""Signs or timestamps a PDF with pyHanko's Python API (not our code), as a reference PAdES
signer whose output our verifier must accept and whose input our signer must be able to sign
over.

    pyhanko_sign.py --key KEY.pem --cert CERT.pem [--chain CHAIN.pem] [--trust ROOT.pem]...
                    [--tsa URL] --level {B-B,B-T,B-LT,B-LTA,doc-ts} [--field NAME]
                    [--md sha256|sha384|sha512] [--no-strict-syntax] IN.pdf OUT.pdf

KEY is an unencrypted PKCS#8 PEM key (EC P-256 or RSA; RSA signs with PKCS#1 v1.5), CERT its
certificate, CHAIN the CA certificates (PEM, any number in one file). All signatures are PAdES
(/SubFilter /ETSI.CAdES.detached), invisible, in a new field on page 1 (--field, default the
first of Signature1, Signature2, ... not yet in the document; doc-ts: DocTimeStamp1, ...).
OUT.pdf is IN.pdf's bytes plus incremental updates: one for B-B, B-T and doc-ts; two for B-LT
(signature; DSS); three for B-LTA (signature; DSS + document timestamp; DSS /VRI update for that
timestamp). Signing OUT.pdf again adds a second signature in a new field.

What pyHanko 0.38 does to the document besides (a signer that signs over its output, or a
verifier, meets all of it):
  - the catalog's /Version goes up: /1.7 plus /Extensions /ESIC for RSA; /2.0 plus
    /Extensions /ISO_ [32002] for ECDSA, and then (PDF 2.0) it also adds or updates an XMP
    /Metadata stream; /Info gets /ModDate and "; pyHanko 0.38.0" appended to /Producer;
  - new objects are numbered from the old /Size + 1: object number /Size is never used, so
    every pyHanko revision leaves one number absent from every xref section;
  - an update is written with an xref stream if IN.pdf's last section is one, with a
    classic table otherwise (hybrid files: a classic table with /Prev, no /XRefStm).

  B-B     PdfSigner(PdfSignatureMetadata(field_name, subfilter=PADES, md_algorithm), signer)
  B-T     same, plus timestamper=HTTPTimeStamper(--tsa): a signature timestamp (unsigned
          attribute id-aa-signatureTimeStampToken) from the TSA.
  B-LT    B-T plus embed_validation_info=True and validation_context=ValidationContext(
          trust_roots, other_certs=chain, allow_fetching=False, revocation_mode="soft-fail"):
          pyHanko validates the signer's and the TSA's paths offline before signing and
          writes the certificates into the DSS (/Certs, a /VRI entry) in a second revision.
          Our test CAs have no OCSP or CRL, so the DSS has no /OCSPs or /CRLs; "soft-fail"
          lets the path validate without them (nothing is fetched either way).
  B-LTA   B-LT plus use_pades_lta=True: after the DSS, a document timestamp
          (/SubFilter /ETSI.RFC3161) in field <field>-LTA.
  doc-ts  PdfTimeStamper(HTTPTimeStamper(--tsa), field_name).timestamp_pdf(...) only: a
          document timestamp, no signature (--key/--cert not needed).

--no-strict-syntax reads IN.pdf with pyHanko's strict=False, as the pyhanko CLI option of that
name does: in strict mode pyHanko refuses to sign (or validate) a hybrid-reference file
("hybrid xrefs are disabled"); validate such outputs with
`pyhanko sign validate --no-strict-syntax ...`.
--trust gives the trust anchors for B-LT/B-LTA path validation (the signer's root and the
TSA's root if different); by default the self-signed certificates in --chain (or CERT).
--dummy-tsa TSA_KEY.pem TSA_CERT.pem [TSA_CHAIN.pem] uses pyHanko's in-process
DummyTimeStamper instead of --tsa (no server, no network; RSA TSA keys only: "Dummy timestamper
is RSA-only"): for trying the levels out when no TSA runs. Tests of our TSA use --tsa.

Prints one line "OK <level> field=<name> ..." with what was written, or exits 1 with the reason
(pyHanko refuses encrypted and damaged inputs; so do we).
"""

import argparse
import io
import sys

from pyhanko.keys import load_cert_from_pemder, load_certs_from_pemder, load_private_key_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA", "doc-ts")


def fail(msg):
    print(f"pyhanko_sign: {msg}", file=sys.stderr)
    sys.exit(1)


def parse_args():
    ap = argparse.ArgumentParser(description="Sign or timestamp a PDF with pyHanko (PAdES).")
    ap.add_argument("--key", help="signer's private key, unencrypted PKCS#8 PEM")
    ap.add_argument("--cert", help="signer's certificate, PEM")
    ap.add_argument("--chain", help="CA certificates, PEM (one file, any number)")
    ap.add_argument(
        "--trust", action="append", default=[], help="trust anchor PEM for B-LT/B-LTA (repeatable)"
    )
    ap.add_argument("--tsa", help="RFC 3161 TSA URL, e.g. http://127.0.0.1:PORT/")
    ap.add_argument(
        "--dummy-tsa",
        nargs="+",
        metavar="PEM",
        help="TSA_KEY TSA_CERT [TSA_CHAIN]: pyHanko's in-process test TSA (RSA keys only)",
    )
    ap.add_argument("--level", required=True, choices=LEVELS)
    ap.add_argument("--field", help="name of the new signature field")
    ap.add_argument("--md", default="sha256", choices=("sha256", "sha384", "sha512"))
    ap.add_argument(
        "--no-strict-syntax",
        action="store_true",
        help="read IN.pdf with strict=False (pyHanko refuses hybrid-reference files otherwise)",
    )
    ap.add_argument("input", metavar="IN.pdf")
    ap.add_argument("output", metavar="OUT.pdf")
    a = ap.parse_args()
    if a.level != "doc-ts" and not (a.key and a.cert):
        ap.error(f"--level {a.level} needs --key and --cert")
    if a.level != "B-B" and not (a.tsa or a.dummy_tsa):
        ap.error(f"--level {a.level} needs --tsa (or --dummy-tsa)")
    if a.tsa and a.dummy_tsa:
        ap.error("--tsa and --dummy-tsa exclude each other")
    if a.dummy_tsa and len(a.dummy_tsa) not in (2, 3):
        ap.error("--dummy-tsa takes TSA_KEY TSA_CERT [TSA_CHAIN]")
    return a


def self_signed(cert):
    return cert.subject == cert.issuer and cert.self_signed in ("maybe", "yes")


def make_timestamper(a):
    if a.tsa:
        return timestamps.HTTPTimeStamper(a.tsa, timeout=30), []
    if a.dummy_tsa:
        tsa_key = load_private_key_from_pemder(a.dummy_tsa[0], None)
        tsa_cert = load_cert_from_pemder(a.dummy_tsa[1])
        extra = list(load_certs_from_pemder([a.dummy_tsa[2]])) if len(a.dummy_tsa) == 3 else []
        store = SimpleCertificateStore.from_certs([tsa_cert, *extra])
        dummy = DummyTimeStamper(tsa_cert=tsa_cert, tsa_key=tsa_key, certs_to_embed=store)
        return dummy, [tsa_cert, *extra]
    return None, []


def free_field_name(reader, prefix):
    taken = {name for name, _, _ in fields.enumerate_sig_fields(reader)}
    n = 1
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


def main():
    a = parse_args()
    try:
        data = open(a.input, "rb").read()
    except OSError as e:
        fail(f"cannot read {a.input}: {e}")

    try:
        w = IncrementalPdfFileWriter(io.BytesIO(data), strict=not a.no_strict_syntax)
    except Exception as e:  # pyHanko's own read errors carry the reason
        fail(f"pyHanko cannot open {a.input}: {type(e).__name__}: {e}")
    if w.prev.encrypted:
        fail(f"{a.input} is encrypted; pyHanko would need its password (refused)")

    timestamper, tsa_certs = make_timestamper(a)
    chain = list(load_certs_from_pemder([a.chain])) if a.chain else []
    prefix = "DocTimeStamp" if a.level == "doc-ts" else "Signature"
    field = a.field or free_field_name(w.prev, prefix)
    out = io.BytesIO()

    if a.level == "doc-ts":
        ts = signers.PdfTimeStamper(timestamper, field_name=field)
        try:
            ts.timestamp_pdf(w, a.md, output=out)
        except Exception as e:
            fail(f"timestamp_pdf: {type(e).__name__}: {e}")
        signer_desc = "document timestamp"
    else:
        try:
            signer = signers.SimpleSigner.load(
                a.key, a.cert, ca_chain_files=(a.chain,) if a.chain else None
            )
        except Exception as e:
            fail(f"cannot load key/certificate: {type(e).__name__}: {e}")
        if signer is None:
            fail("cannot load key/certificate (pyHanko returned nothing: encrypted PEM?)")

        meta = dict(field_name=field, subfilter=fields.SigSeedSubFilter.PADES, md_algorithm=a.md)
        if a.level in ("B-LT", "B-LTA"):
            cert = load_cert_from_pemder(a.cert)
            if a.trust:
                roots = list(load_certs_from_pemder(a.trust))
            else:
                roots = [c for c in chain + [cert] if self_signed(c)]
            if not roots:
                fail("B-LT/B-LTA need trust anchors: --trust ROOT.pem, or the root in --chain")
            vc = ValidationContext(
                trust_roots=roots,
                other_certs=chain + tsa_certs,
                allow_fetching=False,
                revocation_mode="soft-fail",
            )
            meta.update(embed_validation_info=True, validation_context=vc)
            if a.level == "B-LTA":
                meta.update(use_pades_lta=True, timestamp_field_name=f"{field}-LTA")
        pdf_signer = signers.PdfSigner(
            signers.PdfSignatureMetadata(**meta),
            signer=signer,
            timestamper=timestamper,
            new_field_spec=fields.SigFieldSpec(sig_field_name=field),
        )
        try:
            pdf_signer.sign_pdf(w, output=out)
        except Exception as e:
            fail(f"sign_pdf: {type(e).__name__}: {e}")
        signer_desc = signer.signing_cert.subject.human_friendly

    result = out.getvalue()
    if not result.startswith(data):
        fail("pyHanko's output does not start with the input bytes")
    with open(a.output, "wb") as f:
        f.write(result)

    # Report what is in the file now.
    r = PdfFileReader(io.BytesIO(result), strict=not a.no_strict_syntax)
    dss = r.root.get("/DSS")
    dss_desc = "no DSS"
    if dss is not None:
        dss = dss.get_object()
        keys = ("/Certs", "/OCSPs", "/CRLs", "/VRI")
        dss_desc = "DSS " + " ".join(f"{k[1:]}={len(dss[k])}" for k in keys if k in dss)
    sigs = [s.field_name for s in r.embedded_signatures]
    revs, added = r.xrefs.total_revisions, r.xrefs.total_revisions - w.prev.xrefs.total_revisions
    print(
        f"OK {a.level} field={field} md={a.md} signer=\"{signer_desc}\" "
        f"revisions={revs} (+{added}) "
        f"signatures={','.join(sigs)} {dss_desc} bytes={len(result)} -> {a.output}"
    )


if __name__ == "__main__":
    main()
