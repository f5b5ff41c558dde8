r"""Archive records: one scored lead as one JSON line, its PII sealed with AES-256-GCM.

A record is one JSON object on one line (UTF-8, ending in ``\n``), keys in this order::

    {"v": 1,                            format version
     "rid": "<32 hex>",                 random record id (128 bits)
     "seg": "<32 hex>",                 salt of the field key (one per segment file)
     "kid": "20261127T084442.123456Z-1a2b3c4d",   key the field key derives from
     "vertical": "auto", "model_version": "1.0.0",
     "scored_at": "2026-11-27T08:44:42.123456Z",
     "score": 0.8123, "accepted": true,
     "clear": {"age": 35, "vehicle_make": "Toyota"},         model features kept as sent
     "sealed": {"location": "<base64>", "occupation": "<base64>"},  model features, sealed
     "lead_id": "<base64>"}             the caller's lead id, always sealed (also when null)

Which features are clear and which sealed is decided by ``engine.archive.policy``; keys
of the lead that are not model features never reach a record.

Sealing. The field key is ``HKDF-SHA256(archive key, salt=seg, info=FIELD_KEY_INFO)``,
32 bytes, so one field key only ever encrypts the fields of one segment (bounded by the
segment size, far below the 2^32 encryptions that NIST SP 800-38D allows one GCM key
with random nonces) however long an archive key stays current. A sealed value is
``base64(nonce || AES-256-GCM(field key, nonce, JSON(value), ad))`` with a fresh random
96-bit nonce; the ciphertext carries the 16-byte tag. The associated data is::

    AD_PREFIX + canonical JSON of the header + b"\0" + field name

where the header is every key of the record except the ciphertexts, plus the sorted
names of the sealed fields (``$lead_id`` for the lead id), encoded with sorted keys. So
a ciphertext moved to another field or record, any altered clear value, score or time,
a changed ``kid`` or ``seg``, and a sealed field removed or added all fail
authentication. Every record has at least one ciphertext (the lead id), so every record
is authenticated as a whole.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import time
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.archive.errors import ArchiveKeyError, RecordError
from engine.archive.keys import ArchiveKeys

FORMAT = 1
NONCE_BYTES = 12
LEAD_ID_FIELD = "$lead_id"  # '$' cannot start a feature name, so it never collides
AD_PREFIX = b"ml-service lead archive v1\x00"
FIELD_KEY_INFO = b"ml-service lead archive v1: field key"
_JSON = msgspec.json.Encoder()


class Record(msgspec.Struct, forbid_unknown_fields=True):
    """The stored form of one record (see the module docstring)."""

    v: int
    rid: str
    seg: str
    kid: str
    vertical: str
    model_version: str
    scored_at: str
    score: float
    accepted: bool
    clear: dict[str, Any]
    sealed: dict[str, str]
    lead_id: str


class OpenedRecord(msgspec.Struct, frozen=True):
    """A record read back and decrypted.

    Attributes:
        rid: The record id.
        kid: The archive key it was sealed under.
        vertical: The lead's vertical.
        model_version: The version that scored it.
        scored_at: When it was scored (ISO 8601, UTC).
        score: The score returned.
        accepted: Whether the score met the threshold.
        lead_id: The caller's lead id, if one was sent.
        values: Every archived model feature, clear and decrypted, by name.
    """

    rid: str
    kid: str
    vertical: str
    model_version: str
    scored_at: str
    score: float
    accepted: bool
    lead_id: str | None
    values: dict[str, Any]


_DECODER = msgspec.json.Decoder(Record)


@functools.lru_cache(maxsize=8)
def _second(whole: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


def iso_time(epoch: float) -> str:
    """Format epoch seconds as ISO 8601 UTC with microseconds (``...T08:44:42.123456Z``)."""
    whole = int(epoch)
    micros = round((epoch - whole) * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, 0
    return f"{_second(whole)}.{micros:06d}Z"  # leads of one flush share their second


def field_key(archive_key: bytes, seg: bytes) -> AESGCM:
    """Derive the AES-256-GCM field key of one segment."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=seg, info=FIELD_KEY_INFO)
    return AESGCM(hkdf.derive(archive_key))


def _associated_data(record: Record) -> bytes:
    header = {
        "v": record.v,
        "rid": record.rid,
        "seg": record.seg,
        "kid": record.kid,
        "vertical": record.vertical,
        "model_version": record.model_version,
        "scored_at": record.scored_at,
        "score": record.score,
        "accepted": record.accepted,
        "clear": record.clear,
        "sealed": sorted([*record.sealed, LEAD_ID_FIELD]),
    }
    return AD_PREFIX + msgspec.json.encode(header, order="sorted") + b"\x00"


class Sealer:
    """Writes records of one segment: one archive key, one salt, one field key."""

    def __init__(self, kid: str, archive_key: bytes, seg: bytes | None = None) -> None:
        """Create a sealer.

        Args:
            kid: The archive key's id.
            archive_key: The 32-byte archive key.
            seg: The segment salt (16 random bytes when omitted).
        """
        self.kid = kid
        salt = seg if seg is not None else os.urandom(16)
        self.seg = salt.hex()
        self._aead = field_key(archive_key, salt)

    def _seal(self, nonce: bytes, ad: bytes, field: str, value: Any) -> str:
        sealed = self._aead.encrypt(nonce, _JSON.encode(value), ad + field.encode())
        return binascii.b2a_base64(nonce + sealed, newline=False).decode("ascii")

    def record(
        self,
        *,
        vertical: str,
        model_version: str,
        scored_at: float,
        score: float,
        accepted: bool,
        clear: dict[str, Any],
        secret: dict[str, Any],
        lead_id: str | None,
    ) -> bytes:
        """Return one sealed record as one JSON line, newline included.

        Args:
            vertical: The lead's vertical.
            model_version: The version that scored it.
            scored_at: Epoch seconds of scoring.
            score: The score returned.
            accepted: Whether it met the threshold.
            clear: Features stored as sent.
            secret: Features to seal.
            lead_id: The caller's lead id (sealed; None is sealed too).
        """
        # One read of the system's random source for the record id and every nonce.
        random = os.urandom(16 + NONCE_BYTES * (len(secret) + 1))
        nonces = [random[i : i + NONCE_BYTES] for i in range(16, len(random), NONCE_BYTES)]
        record = Record(
            v=FORMAT,
            rid=random[:16].hex(),
            seg=self.seg,
            kid=self.kid,
            vertical=vertical,
            model_version=model_version,
            scored_at=iso_time(scored_at),
            score=score,
            accepted=accepted,
            clear=clear,
            sealed=dict.fromkeys(secret, ""),
            lead_id="",
        )
        ad = _associated_data(record)
        record.sealed = {
            name: self._seal(nonce, ad, name, value)
            for nonce, (name, value) in zip(nonces, secret.items(), strict=False)
        }
        record.lead_id = self._seal(nonces[-1], ad, LEAD_ID_FIELD, lead_id)
        return _JSON.encode(record) + b"\n"


class Opener:
    """Reads records back with the keys of a key directory (field keys cached)."""

    def __init__(self, keys: ArchiveKeys) -> None:
        self.keys = keys
        self._aeads: dict[tuple[str, str], AESGCM] = {}

    def _aead(self, kid: str, seg: str) -> AESGCM:
        aead = self._aeads.get((kid, seg))
        if aead is None:
            try:
                salt = bytes.fromhex(seg)
            except ValueError:
                raise RecordError("its seg is not hex") from None
            try:
                archive_key = self.keys.key(kid)
            except ArchiveKeyError:
                raise RecordError(
                    f"it is sealed under key {kid[:80]!r}, which is not in {self.keys.label}"
                ) from None
            aead = self._aeads[(kid, seg)] = field_key(archive_key, salt)
        return aead

    def open(self, line: bytes) -> OpenedRecord:
        """Parse, authenticate and decrypt one record line.

        Raises:
            RecordError: The line is not a record of a known format, its key is not
                available, or it fails authentication (``tampered``). The reason never
                contains the record's values.
        """
        try:
            record = _DECODER.decode(line)
        except msgspec.DecodeError as exc:
            raise RecordError(f"not an archive record ({_shape_problem(exc)})") from None
        if record.v != FORMAT:
            raise RecordError(f"record format {record.v} is not supported (only {FORMAT})")
        aead = self._aead(record.kid, record.seg)
        ad = _associated_data(record)
        values = dict(record.clear)
        for name, sealed in record.sealed.items():
            values[name] = self._unseal(aead, ad, name, sealed)
        lead_id = self._unseal(aead, ad, LEAD_ID_FIELD, record.lead_id)
        if lead_id is not None and not isinstance(lead_id, str):
            raise RecordError("its lead id is not a string")
        return OpenedRecord(
            rid=record.rid,
            kid=record.kid,
            vertical=record.vertical,
            model_version=record.model_version,
            scored_at=record.scored_at,
            score=record.score,
            accepted=record.accepted,
            lead_id=lead_id,
            values=values,
        )

    @staticmethod
    def _unseal(aead: AESGCM, ad: bytes, field: str, sealed: str) -> Any:
        try:
            raw = base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError):
            raise RecordError(f"sealed field {field!r} is not base64", tampered=True) from None
        if len(raw) < NONCE_BYTES + 16:
            raise RecordError(f"sealed field {field!r} is too short", tampered=True)
        try:
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], ad + field.encode())
        except InvalidTag:
            raise RecordError(
                f"field {field!r} failed authentication: the record was altered, or a "
                "ciphertext was moved between records or fields",
                tampered=True,
            ) from None
        try:
            return msgspec.json.decode(plain)
        except msgspec.DecodeError:  # authenticated but not JSON: a writer bug, not tampering
            raise RecordError(f"sealed field {field!r} does not hold JSON") from None


def _shape_problem(exc: msgspec.DecodeError) -> str:
    """Return the decode problem, short (msgspec names keys and paths, not values)."""
    return str(exc)[:200]
