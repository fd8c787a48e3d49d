"""Writes the input PDFs that a PDF signer must handle, each made by a real producer (reportlab,
qpdf, pyHanko's incremental writer) except hybrid.pdf, which no available tool writes and which
is put together here by hand from reportlab.pdf's objects.

    python3 tests/py/pdf_fixtures.py OUTDIR

Needs reportlab and pyhanko (PyPI) and qpdf (Debian package) on PATH.

  reportlab.pdf               reportlab canvas, invariant=1, PDF 1.4, 2 A4 pages of a made-up
                              bank statement (text, ruled table); classic xref table.
  objstm.pdf                  qpdf --object-streams=generate --deterministic-id reportlab.pdf:
                              one xref stream, most objects inside object streams.
  pdf20.pdf                   qpdf --force-version=2.0 --object-streams=generate
                              --deterministic-id reportlab.pdf: header %PDF-2.0, xref stream.
  incremental.pdf             reportlab.pdf + 2 incremental updates written by pyHanko's
                              IncrementalPdfFileWriter (1: /Info /Title; 2: /Info /Subject and
                              catalog /PageLayout), 3 revisions, 3 classic xref tables.
  incremental-xrefstream.pdf  objstm.pdf + 1 pyHanko incremental update (/Info /Title); pyHanko
                              writes an xref stream because the original has one.
  hybrid.pdf                  hybrid-reference file (ISO 32000-1 7.5.8.4), laid out as the spec's
                              example and MS Word do it: reportlab.pdf's font and /Info
                              dictionaries moved into an object stream; a main xref table that
                              lists them (and the two streams) as free "65535 f" entries; then an
                              empty update table ("xref 0 0") whose trailer has /Prev and the
                              /XRefStm offset of the xref stream that lists them. 2 revisions
                              to a reader that counts %%EOFs. Also checked with poppler's
                              pdffonts, which ignores /XRefStm in any other layout.
  encrypted.pdf               qpdf --encrypt user owner 256 -- reportlab.pdf (AES-256; a signer
                              must refuse it). Not deterministic (random salts).
  truncated.pdf               the first 60% of reportlab.pdf's bytes (a signer must refuse it).

Every file except encrypted.pdf is byte-for-byte the same on every run with the same versions
of reportlab, pyHanko and qpdf (pyHanko's /ModDate and second /ID element are pinned here).
Each file is checked with `qpdf --check` (encrypted.pdf with --password=user; truncated.pdf
must fail it), plus the structural property it is for. Prints one line per file:
"<name> <bytes> <sha256[:16]> <what>", exits 1 with the reason if anything is wrong.
"""

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import zlib
from datetime import datetime, timezone

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

FIXED_DATE = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def fail(msg):
    print(f"pdf_fixtures: {msg}", file=sys.stderr)
    sys.exit(1)


def qpdf(*args, check=True):
    r = subprocess.run(["qpdf", *args], capture_output=True, text=True)
    # qpdf exits 3 for "succeeded with warnings": a fixture must have none.
    if check and r.returncode != 0:
        fail(f"qpdf {' '.join(args)} exited {r.returncode}: {r.stderr.strip() or r.stdout.strip()}")
    return r


# ---------------------------------------------------------------- reportlab.pdf


def transactions():
    """40 made-up transactions, the same every run."""
    payees = [
        ("Card payment", "GROCER & SONS LTD"),
        ("Direct debit", "CITY WATER BOARD"),
        ("Transfer in", "SALARY ACME WIDGETS"),
        ("Card payment", "RAILWAY TICKETS"),
        ("Standing order", "RENT - FLAT 3B"),
        ("Card payment", "BOOKSHOP ON HIGH ST"),
        ("Cash withdrawal", "ATM 0412 MARKET SQ"),
        ("Direct debit", "MOBILE PHONE CO"),
    ]
    rows = []
    for i in range(40):
        kind, payee = payees[(i * 5) % len(payees)]
        cents = ((i * 7919) % 15000) + 250
        if kind == "Transfer in":
            cents = 325000
        elif kind == "Standing order":
            cents = -95000
        else:
            cents = -cents
        day = 1 + (i * 3) // 4
        rows.append((f"2024-04-{day:02d}", kind, payee, cents))
    return rows


def money(cents):
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100:,}.{cents % 100:02d}"


def make_reportlab(path):
    c = canvas.Canvas(path, pagesize=A4, invariant=1, pdfVersion=(1, 4))
    c.setTitle("Statement of account April 2024")
    c.setAuthor("Northwind Savings Bank (fictitious)")
    c.setSubject("Sigillum PDF signer test input")
    c.setCreator("tests/py/pdf_fixtures.py")
    width, height = A4
    rows = transactions()
    per_page = 24
    balance = 1234567
    for page in range(2):
        y = height - 60
        c.setFont("Helvetica-Bold", 16)
        c.drawString(50, y, "Northwind Savings Bank")
        c.setFont("Helvetica", 9)
        c.drawRightString(width - 50, y, f"Page {page + 1} of 2")
        y -= 16
        c.drawString(50, y, "1 Example Street, Testville - a fictitious bank for test documents")
        c.setLineWidth(1.2)
        c.line(50, y - 8, width - 50, y - 8)
        y -= 34
        c.setFont("Helvetica-Bold", 11)
        c.drawString(50, y, "Statement of account")
        c.setFont("Helvetica", 10)
        c.drawString(50, y - 15, "Account holder: J. Q. Example")
        c.drawString(50, y - 29, "Account number: XX00 TEST 0000 0000 0042")
        c.drawString(320, y - 15, "Period: 2024-04-01 to 2024-04-30")
        c.drawString(320, y - 29, f"Opening balance: {money(balance)} EUR")
        y -= 60
        c.setFont("Helvetica-Bold", 9)
        for x, h in ((50, "Date"), (120, "Type"), (220, "Description")):
            c.drawString(x, y, h)
        c.drawRightString(450, y, "Amount")
        c.drawRightString(width - 50, y, "Balance")
        c.setLineWidth(0.6)
        c.line(50, y - 4, width - 50, y - 4)
        y -= 18
        c.setFont("Courier", 9)
        for date, kind, payee, cents in rows[page * per_page : (page + 1) * per_page]:
            balance += cents
            c.drawString(50, y, date)
            c.drawString(120, y, kind)
            c.drawString(220, y, payee)
            c.drawRightString(450, y, money(cents))
            c.drawRightString(width - 50, y, money(balance))
            c.setLineWidth(0.2)
            c.line(50, y - 5, width - 50, y - 5)
            y -= 19
        if page == 1:
            y -= 10
            c.setFont("Helvetica-Bold", 10)
            c.drawString(50, y, f"Closing balance: {money(balance)} EUR")
            y -= 30
            c.setFont("Helvetica-Oblique", 8)
            c.drawString(50, y, "This statement was produced by a test generator. None of the")
            c.drawString(
                50, y - 11, "names, numbers or amounts on it refer to real people or accounts."
            )
        c.setFont("Helvetica", 7)
        c.drawString(50, 40, "Northwind Savings Bank - statement 2024-04 - generated by reportlab")
        c.showPage()
    c.save()


# ------------------------------------------------------- pyHanko incremental updates


class PinnedIncrementalWriter(IncrementalPdfFileWriter):
    """pyHanko's incremental writer with /ModDate and the second /ID element pinned, so that
    the output is the same every run (pyHanko sets them to now and to 16 random bytes).
    Like every pyHanko update, it also sets the catalog's /Version to /1.7 (the header stays
    %PDF-1.4) and appends "; pyHanko 0.x" to /Producer."""

    def __init__(self, stream, tag):
        super().__init__(stream)
        # pyHanko numbers new objects from the old /Size + 1 (object number /Size is never
        # used) and writes /Size = last number + 1, so an update that adds no object grows
        # /Size by one and `qpdf --check` warns "reported number of objects (N) is not one
        # plus the highest object number". Start one lower, as the spec means it.
        self._lastobj_id = int(self.trailer["/Size"]) - 1
        id1 = self._document_id[0]
        id2 = hashlib.sha256(b"pdf_fixtures " + tag.encode()).digest()[:16]
        self._document_id = generic.ArrayObject([id1, generic.ByteStringObject(id2)])

    def _update_meta(self):
        super()._update_meta()
        if self._info is not None:
            self._info.get_object()["/ModDate"] = generic.pdf_date(FIXED_DATE)
            self.mark_update(self._info)


def incremental_update(data, tag, info_changes, catalog_changes=None):
    w = PinnedIncrementalWriter(io.BytesIO(data), tag)
    info_ref = w.trailer.raw_get("/Info")
    info = info_ref.get_object()
    for k, v in info_changes.items():
        info[generic.NameObject(k)] = generic.TextStringObject(v)
    w.update_container(info_ref)
    if catalog_changes:
        for k, v in catalog_changes.items():
            w.root[generic.NameObject(k)] = v
        w.update_root()
    out = io.BytesIO()
    w.write(out)
    result = out.getvalue()
    if not result.startswith(data):
        fail(f"{tag}: pyHanko's update does not start with the original bytes")
    return result


# ------------------------------------------------------------------ hybrid.pdf


def split_objects(data):
    """(objnum -> b'N 0 obj ... endobj\\n') for a single-revision classic-xref file, sliced at
    the xref table's offsets; plus the trailer dictionary's text."""
    m = re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data)
    xref_at = int(m.group(1))
    table = data[xref_at:]
    m = re.match(rb"xref\s+0 (\d+)\s+", table)
    size = int(m.group(1))
    entries = table[m.end() : m.end() + 20 * size]
    offsets = {}
    for i in range(size):
        e = entries[20 * i : 20 * i + 20]
        if e[17:18] == b"n":
            offsets[i] = int(e[0:10])
    ends = sorted(offsets.values()) + [xref_at]
    objs = {}
    for num, off in offsets.items():
        end = ends[ends.index(off) + 1]
        body = data[off:end].rstrip()
        if not (body.startswith(f"{num} 0 obj".encode()) and body.endswith(b"endobj")):
            fail(f"hybrid: object {num} at {off} does not look like one")
        objs[num] = body
    trailer = table[table.index(b"trailer") :]
    return size, objs, trailer


def make_hybrid(src):
    """A hybrid-reference file shaped as PDF Reference 1.7 3.4.7 (ISO 32000-1 7.5.8.4) and MS
    Word's output have it: a main xref table for every object number, in which the hidden
    objects are free entries with generation 65535, then an empty update table ("xref 0 0")
    whose trailer has /Prev (the main table) and /XRefStm (the xref stream listing the hidden
    objects). A PDF 1.5 reader looks in the update table, then in the /XRefStm stream, then in
    the main table. The main table must not carry /XRefStm itself (the spec says so; poppler,
    for one, fills its table from the classic entries first and then ignores stream entries
    for numbers that the table listed as free)."""
    size, objs, trailer = split_objects(src)
    root = int(re.search(rb"/Root (\d+) 0 R", trailer).group(1))
    info = int(re.search(rb"/Info (\d+) 0 R", trailer).group(1))
    ids = re.search(rb"/ID\s*\[\s*(<[0-9a-fA-F]+>)\s*(<[0-9a-fA-F]+>)\s*\]", trailer)
    id_text = f"[{ids.group(1).decode()} {ids.group(2).decode()}]"

    def inner(body):
        return body[body.index(b"obj") + 3 : -len(b"endobj")].strip()

    # Hidden in the object stream: the /Info dictionary, the fonts and the font resource
    # dictionaries, i.e. what a PDF 1.4 reader can miss and still find every page (the point
    # of a hybrid file). The catalog, page tree, pages and content streams stay in the table.
    compressed = []
    fonts = 0
    for num in sorted(objs):
        text = inner(objs[num])
        if b"stream" in text or num == root:
            continue
        font_resources = re.fullmatch(rb"<<\s*(/F\d+ \d+ 0 R\s*)+>>", text)
        if b"/Type /Font" in text:
            fonts += 1
        if num == info or b"/Type /Font" in text or font_resources:
            compressed.append(num)
    if not compressed or info not in compressed:
        fail("hybrid: nothing to put into the object stream")

    objstm_num = size
    xrefstm_num = size + 1
    new_size = size + 2
    # Hidden from a PDF 1.4 reader: the compressed objects, the object stream and the xref
    # stream itself (as in the spec's example); all three are free entries in the main table.
    hidden = compressed + [objstm_num, xrefstm_num]

    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objs):
        if num in compressed:
            continue
        offsets[num] = len(out)
        out += objs[num] + b"\n"

    header = b""
    payload = b""
    for num in compressed:
        header += f"{num} {len(payload)} ".encode()
        payload += inner(objs[num]) + b"\n"
    stm_data = zlib.compress(header + b"\n" + payload, 9)
    objstm_at = len(out)
    out += (
        f"{objstm_num} 0 obj\n<< /Type /ObjStm /N {len(compressed)} /First {len(header) + 1} "
        f"/Filter /FlateDecode /Length {len(stm_data)} >>\nstream\n"
    ).encode()
    out += stm_data + b"\nendstream\nendobj\n"

    # The xref stream: type 2 for the compressed objects, type 1 for the object stream and
    # for itself; /W [1 4 2].
    xrefstm_at = len(out)
    rows = b""
    for i, num in enumerate(compressed):
        rows += bytes([2]) + objstm_num.to_bytes(4, "big") + i.to_bytes(2, "big")
    rows += bytes([1]) + objstm_at.to_bytes(4, "big") + (0).to_bytes(2, "big")
    rows += bytes([1]) + xrefstm_at.to_bytes(4, "big") + (0).to_bytes(2, "big")
    index = " ".join(f"{n} 1" for n in hidden)
    xref_data = zlib.compress(rows, 9)
    out += (
        f"{xrefstm_num} 0 obj\n<< /Type /XRef /Size {new_size} /W [1 4 2] /Index [{index}] "
        f"/Filter /FlateDecode /Length {len(xref_data)} >>\nstream\n"
    ).encode()
    out += xref_data + b"\nendstream\nendobj\n"

    # Main table: every number; hidden ones free with generation 65535 (never to be reused),
    # chained in the free list from entry 0.
    free = [0] + hidden
    next_free = {free[i]: free[(i + 1) % len(free)] for i in range(len(free))}
    main_at = len(out)
    out += f"xref\n0 {new_size}\n".encode()
    for num in range(new_size):
        if num in next_free:
            out += f"{next_free[num]:010d} 65535 f \n".encode()
        elif num in offsets:
            out += f"{offsets[num]:010d} 00000 n \n".encode()
        else:
            fail(f"hybrid: object {num} is neither written nor hidden")
    out += (
        f"trailer\n<< /Size {new_size} /Root {root} 0 R /Info {info} 0 R /ID {id_text} >>\n"
        f"startxref\n{main_at}\n%%EOF\n"
    ).encode()
    # Update section: no entries, /Prev to the main table, /XRefStm to the stream.
    update_at = len(out)
    out += (
        f"xref\n0 0\ntrailer\n<< /Size {new_size} /Root {root} 0 R /Info {info} 0 R /ID {id_text} "
        f"/Prev {main_at} /XRefStm {xrefstm_at} >>\nstartxref\n{update_at}\n%%EOF\n"
    ).encode()
    return bytes(out), compressed, fonts


# ------------------------------------------------------------------------ checks


def qpdf_check(path, password=None):
    args = ["--check", path] if password is None else [f"--password={password}", "--check", path]
    r = qpdf(*args, check=False)
    ok = r.returncode == 0 and "No syntax or stream encoding errors found" in r.stdout
    return ok, (r.stdout + r.stderr).strip()


def xref_kinds(path):
    """'table' or 'stream' for each revision of a file, newest first, from the bytes."""
    data = open(path, "rb").read()
    kinds = []
    for m in re.finditer(rb"startxref\s+(\d+)\s+%%EOF", data):
        at = int(m.group(1))
        kinds.append("table" if data[at : at + 4] == b"xref" else "stream")
    return list(reversed(kinds))


def pyhanko_revisions(path):
    with open(path, "rb") as f:
        r = PdfFileReader(f, strict=True)
        return r.xrefs.total_revisions, r.xrefs.hybrid_xrefs_present


def main():
    if len(sys.argv) != 2:
        fail("usage: pdf_fixtures.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    p = lambda name: os.path.join(outdir, name)  # noqa: E731

    make_reportlab(p("reportlab.pdf"))
    base = open(p("reportlab.pdf"), "rb").read()
    qpdf("--object-streams=generate", "--deterministic-id", p("reportlab.pdf"), p("objstm.pdf"))
    qpdf(
        "--force-version=2.0",
        "--object-streams=generate",
        "--deterministic-id",
        p("reportlab.pdf"),
        p("pdf20.pdf"),
    )

    rev2 = incremental_update(
        base, "incremental-1", {"/Title": "Statement of account April 2024 (corrected)"}
    )
    rev3 = incremental_update(
        rev2,
        "incremental-2",
        {"/Subject": "Sigillum PDF signer test input, updated twice"},
        {"/PageLayout": generic.NameObject("/OneColumn")},
    )
    open(p("incremental.pdf"), "wb").write(rev3)

    objstm = open(p("objstm.pdf"), "rb").read()
    upd = incremental_update(
        objstm,
        "incremental-xrefstream",
        {"/Title": "Statement of account April 2024 (xref stream update)"},
    )
    open(p("incremental-xrefstream.pdf"), "wb").write(upd)

    hybrid, compressed, hidden_fonts = make_hybrid(base)
    open(p("hybrid.pdf"), "wb").write(hybrid)

    qpdf("--encrypt", "user", "owner", "256", "--", p("reportlab.pdf"), p("encrypted.pdf"))
    open(p("truncated.pdf"), "wb").write(base[: len(base) * 60 // 100])

    # What each file is for, and the check that it is that.
    expect = {
        "reportlab.pdf": (
            ["table"],
            lambda d: d.startswith(b"%PDF-1.4"),
            "PDF 1.4, classic xref table, 1 revision",
        ),
        "objstm.pdf": (
            ["stream"],
            lambda d: b"/ObjStm" in d,
            "xref stream + object streams, 1 revision",
        ),
        "pdf20.pdf": (
            ["stream"],
            lambda d: d.startswith(b"%PDF-2.0") and b"/ObjStm" in d,
            "PDF 2.0, xref stream + object streams",
        ),
        "incremental.pdf": (
            ["table"] * 3,
            lambda d: d.startswith(base),
            "3 revisions, classic xref tables",
        ),
        "incremental-xrefstream.pdf": (
            ["stream"] * 2,
            lambda d: d.startswith(objstm),
            "2 revisions, xref streams",
        ),
        "hybrid.pdf": (
            ["table", "table"],
            lambda d: d.count(b"/XRefStm") == 1,
            f"hybrid: main table + empty update table with /XRefStm; "
            f"objects {compressed} in an object stream",
        ),
    }
    for name, (kinds, prop, what) in expect.items():
        path = p(name)
        data = open(path, "rb").read()
        ok, out = qpdf_check(path)
        if not ok:
            fail(f"{name}: qpdf --check failed:\n{out}")
        if xref_kinds(path) != kinds:
            fail(f"{name}: xref sections {xref_kinds(path)}, expected {kinds}")
        if not prop(data):
            fail(f"{name}: is not {what}")
        revs, hybrid_seen = pyhanko_revisions(path)
        if revs != len(kinds) or hybrid_seen != (name == "hybrid.pdf"):
            fail(f"{name}: pyHanko reads {revs} revision(s), hybrid={hybrid_seen}")
        report(name, data, what)

    # poppler reads /XRefStm only in the spec's layout: it must find the hidden fonts.
    if shutil.which("pdffonts"):
        r = subprocess.run(["pdffonts", p("hybrid.pdf")], capture_output=True, text=True)
        fonts = r.stdout.strip().splitlines()[2:]
        if r.returncode != 0 or "Error" in r.stderr or len(fonts) != hidden_fonts:
            fail(f"hybrid.pdf: pdffonts sees {len(fonts)} fonts:\n{r.stdout}{r.stderr}")

    ok, out = qpdf_check(p("encrypted.pdf"), password="user")
    if not ok or "R = 6" not in out:
        fail(f"encrypted.pdf: qpdf --password=user --check:\n{out}")
    if qpdf("--requires-password", p("encrypted.pdf"), check=False).returncode != 0:
        fail("encrypted.pdf opens without a password")
    report(
        "encrypted.pdf",
        open(p("encrypted.pdf"), "rb").read(),
        "AES-256 (R6), user password 'user', owner 'owner': must be refused",
    )

    ok, _ = qpdf_check(p("truncated.pdf"))
    if ok:
        fail("truncated.pdf passes qpdf --check")
    report(
        "truncated.pdf",
        open(p("truncated.pdf"), "rb").read(),
        "first 60% of reportlab.pdf, fails qpdf --check: must be refused",
    )


def report(name, data, what):
    print(f"{name} {len(data)} {hashlib.sha256(data).hexdigest()[:16]} {what}")


if __name__ == "__main__":
    main()
