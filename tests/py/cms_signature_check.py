"""Independent check of a timestamp token's CMS signature with pyasn1 and cryptography.

    cms_signature_check.py TOKEN_OR_RESPONSE.der SIGNER_CERT.pem

Decodes the token with pyasn1-modules' RFC 5652 / RFC 3161 schemas (not our code), checks that
messageDigest equals the hash of the eContent octets, re-encodes the signed attributes as a DER
SET (what RFC 5652 §5.4 says is signed) and verifies the SignerInfo signature with the
`cryptography` package, for every key type we issue with: ECDSA, RSA PKCS#1 v1.5, RSA-PSS and
Ed25519 (which OpenSSL 3.0's CMS cannot check). Prints "OK <algorithm>" or exits 1.
"""
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ
from pyasn1_modules import rfc3161, rfc5652

HASHES = {
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
ID_MESSAGE_DIGEST = univ.ObjectIdentifier("1.2.840.113549.1.9.4")
ID_SIGNED_DATA = univ.ObjectIdentifier("1.2.840.113549.1.7.2")
ID_RSASSA_PSS = "1.2.840.113549.1.1.10"


def fail(msg):
    print(f"cms_signature_check: {msg}", file=sys.stderr)
    sys.exit(1)


def token_der(raw):
    # A token (ContentInfo) starts with its contentType OID; a TimeStampResp with PKIStatusInfo.
    header = 2 + (raw[1] & 0x7F if raw[1] & 0x80 else 0)
    if raw[header] == 0x06:
        return raw
    resp, _ = decoder.decode(raw, asn1Spec=rfc3161.TimeStampResp())
    return encoder.encode(resp["timeStampToken"])


def digest(hash_cls, data):
    h = hashes.Hash(hash_cls())
    h.update(data)
    return h.finalize()


def main(token_path, cert_path):
    raw = open(token_path, "rb").read()
    ci, _ = decoder.decode(token_der(raw), asn1Spec=rfc5652.ContentInfo())
    if ci["contentType"] != ID_SIGNED_DATA:
        fail("not SignedData")
    sd, _ = decoder.decode(ci["content"], asn1Spec=rfc5652.SignedData())
    econtent = bytes(sd["encapContentInfo"]["eContent"])
    (si,) = list(sd["signerInfos"])
    hash_cls = HASHES.get(str(si["digestAlgorithm"]["algorithm"]))
    if hash_cls is None:
        fail(f"unknown digest {si['digestAlgorithm']['algorithm']}")
    attrs = si["signedAttrs"]
    md = [a for a in attrs if a["attrType"] == ID_MESSAGE_DIGEST]
    if len(md) != 1:
        fail("no single messageDigest attribute")
    md_value, _ = decoder.decode(md[0]["attrValues"][0], asn1Spec=univ.OctetString())
    if bytes(md_value) != digest(hash_cls, econtent):
        fail("messageDigest does not match the eContent")
    # RFC 5652 §5.4: the DER of the attributes with an EXPLICIT SET OF tag.
    signed = univ.SetOf(componentType=rfc5652.Attribute())
    for i, a in enumerate(attrs):
        signed.setComponentByPosition(i, a)
    to_verify = encoder.encode(signed)
    signature = bytes(si["signature"])
    key = x509.load_pem_x509_certificate(open(cert_path, "rb").read()).public_key()
    sig_oid = str(si["signatureAlgorithm"]["algorithm"])
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, to_verify)
            name = "ed25519"
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, to_verify, ec.ECDSA(hash_cls()))
            name = f"ecdsa-{key.curve.name}"
        elif isinstance(key, rsa.RSAPublicKey) and sig_oid == ID_RSASSA_PSS:
            key.verify(signature, to_verify, padding.PSS(padding.MGF1(hash_cls()), hash_cls().digest_size), hash_cls())
            name = "rsa-pss"
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, to_verify, padding.PKCS1v15(), hash_cls())
            name = "rsa-pkcs1"
        else:
            fail(f"unsupported key {type(key).__name__}")
    except Exception as e:  # cryptography raises InvalidSignature
        fail(f"signature does not verify: {type(e).__name__}")
    print(f"OK {name}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: cms_signature_check.py TOKEN CERT.pem")
    main(sys.argv[1], sys.argv[2])
