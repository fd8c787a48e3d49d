"""Validates every signature and document timestamp of a PDF with pyHanko's Python API (not our
code) and prints what pyHanko judged, as JSON, for the PDF interop tests (tests/tests/pdf_interop.rs)
to assert on. The pyhanko CLI shows no document timestamps and no modification level by name;
this does.

    pdf_validate.py --trust ROOTS.pem [--trust MORE.pem]... [--no-strict-syntax] IN.pdf

Each embedded signature, in file order, is checked offline against the trust roots:
  /Type /DocTimeStamp  validate_pdf_timestamp(sig, validation_context=vc)
  otherwise            validate_pdf_signature(sig, signer_validation_context=vc,
                                              ts_validation_context=vc)
with vc = ValidationContext(trust_roots=ROOTS, allow_fetching=False, revocation_mode="soft-fail")
(our test CAs publish no OCSP or CRL; nothing is fetched). Prints one JSON object:

  {"signatures": [{"field", "type" ("/Sig" or "/DocTimeStamp"), "sub_filter", "intact",
                   "valid", "trusted", "coverage" (e.g. "ENTIRE_FILE"), "modification_level"
                   (e.g. "NONE", "LTA_UPDATES", "FORM_FILLING", "OTHER"), "docmdp_ok",
                   "bottom_line", "summary",
                   "timestamp": {"intact", "valid", "trusted"} or null}]}

"bottom_line" and "docmdp_ok" are null for document timestamps (pyHanko has neither there).
Exits 0 when it could validate (whatever the verdicts), 1 with the reason otherwise.
"""

import argparse
import json
import sys

from pyhanko.keys import load_certs_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko_certvalidator import ValidationContext


def name(value):
    """An enum member's name, or None."""
    return None if value is None else getattr(value, "name", str(value))


def main():
    ap = argparse.ArgumentParser(description="Validate a PDF's signatures with pyHanko's API.")
    ap.add_argument("--trust", action="append", required=True, help="trust roots, PEM")
    ap.add_argument("--no-strict-syntax", action="store_true", help="read with strict=False")
    ap.add_argument("input", metavar="IN.pdf")
    a = ap.parse_args()

    roots = list(load_certs_from_pemder(a.trust))
    try:
        reader = PdfFileReader(open(a.input, "rb"), strict=not a.no_strict_syntax)
        embedded = list(reader.embedded_signatures)
    except Exception as e:
        print(f"pdf_validate: pyHanko cannot read {a.input}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)

    out = []
    for sig in embedded:
        vc = ValidationContext(trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail")
        kind = str(sig.sig_object.get("/Type", "/Sig"))
        try:
            if kind == "/DocTimeStamp":
                st = validate_pdf_timestamp(sig, validation_context=vc)
            else:
                st = validate_pdf_signature(
                    sig, signer_validation_context=vc, ts_validation_context=vc
                )
        except Exception as e:
            print(
                f"pdf_validate: validating {sig.field_name}: {type(e).__name__}: {e}",
                file=sys.stderr,
            )
            sys.exit(1)
        ts = getattr(st, "timestamp_validity", None)
        out.append(
            {
                "field": sig.field_name,
                "type": kind,
                "sub_filter": str(sig.sig_object.get("/SubFilter")),
                "intact": st.intact,
                "valid": st.valid,
                "trusted": st.trusted,
                "coverage": name(st.coverage),
                "modification_level": name(st.modification_level),
                "docmdp_ok": getattr(st, "docmdp_ok", None),
                "bottom_line": getattr(st, "bottom_line", None),
                "summary": st.summary(),
                "timestamp": None
                if ts is None
                else {"intact": ts.intact, "valid": ts.valid, "trusted": ts.trusted},
            }
        )
    print(json.dumps({"signatures": out}, indent=1))


if __name__ == "__main__":
    main()
