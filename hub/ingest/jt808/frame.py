"""JT/T 808 framing (2011/2013 and 2019): delimiters, escaping, check code, header, subpackages.

Pure: bytes in, frames out. A frame on the wire is `7E | header | body | check | 7E`, with
`7E` → `7D 02` and `7D` → `7D 01` escaped after the XOR check code is computed.
"""

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

FLAG = 0x7E
ESCAPE = 0x7D

BODY_LENGTH_MASK = 0x03FF
ENCRYPTION_MASK = 0x1C00
SUBPACKAGE_BIT = 1 << 13
VERSION_BIT = 1 << 14
MAX_BODY_BYTES = BODY_LENGTH_MASK


class Version(IntEnum):
    """Which edition of the standard a header follows (2011 and 2013 share their framing)."""

    V2013 = 0
    V2019 = 1


class FrameError(ValueError):
    """A frame that cannot be read: what is wrong with it, for the bad-frame counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Header:
    """The fields of a message header; `phone` is the terminal number's BCD digits."""

    msg_id: int
    phone: str
    serial: int
    version: Version = Version.V2013
    protocol_version: int = 0
    encryption: int = 0
    package_total: int = 0
    package_index: int = 0

    @property
    def is_subpackage(self) -> bool:
        """Whether the body is one part of a larger message."""
        return self.package_total > 0


@dataclass(frozen=True, slots=True)
class Frame:
    """One message: its header and its (possibly partial) body."""

    header: Header
    body: bytes


def escape(data: bytes) -> bytes:
    """Replace 7D by 7D 01 and 7E by 7D 02."""
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes) -> bytes:
    """Undo `escape`; a 7D followed by anything but 01 or 02 is a broken frame."""
    if ESCAPE not in data:
        return data
    # Every 7D must start a 7D 01 or a 7D 02 (neither pattern can overlap another).
    if data.count(b"\x7d") != data.count(b"\x7d\x01") + data.count(b"\x7d\x02"):
        at = next(
            i
            for i, b in enumerate(data)
            if b == ESCAPE and data[i + 1 : i + 2] not in (b"\x01", b"\x02")
        )
        raise FrameError("bad_escape", f"7D at offset {at} not followed by 01 or 02")
    return data.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


def check_code(data: bytes) -> int:
    """XOR of every byte: the check code of header and body."""
    code = 0
    for byte in data:
        code ^= byte
    return code


def encode_bcd(digits: str, size: int) -> bytes:
    """Digits as packed BCD of `size` bytes, left-padded with zeros."""
    if not digits.isdigit() and digits:
        raise ValueError(f"BCD takes digits only, not {digits!r}")
    if len(digits) > size * 2:
        raise ValueError(f"{digits!r} does not fit in {size} BCD bytes")
    return bytes.fromhex(digits.rjust(size * 2, "0"))


def decode_bcd(data: bytes) -> str:
    """Packed BCD as its digits; a nibble above 9 is an error."""
    text = data.hex()
    if not text.isdigit():
        raise FrameError("bad_bcd", f"{text} is not BCD")
    return text


# Platform replies repeat a connection's terminal number in every header: encode it once.
_cached_bcd = functools.lru_cache(maxsize=65_536)(encode_bcd)


def encode_header(header: Header, body_length: int) -> bytes:
    """The header bytes for a body of `body_length` bytes."""
    if body_length > MAX_BODY_BYTES:
        raise ValueError(f"body of {body_length} bytes exceeds {MAX_BODY_BYTES}; subpackage it")
    props = body_length | ((header.encryption & 0x7) << 10)
    if header.is_subpackage:
        props |= SUBPACKAGE_BIT
    out = bytearray()
    if header.version == Version.V2019:
        props |= VERSION_BIT
        out += header.msg_id.to_bytes(2, "big") + props.to_bytes(2, "big")
        out.append(header.protocol_version & 0xFF)
        out += _cached_bcd(header.phone, 10)
    else:
        out += header.msg_id.to_bytes(2, "big") + props.to_bytes(2, "big")
        out += _cached_bcd(header.phone, 6)
    out += (header.serial & 0xFFFF).to_bytes(2, "big")
    if header.is_subpackage:
        out += header.package_total.to_bytes(2, "big") + header.package_index.to_bytes(2, "big")
    return bytes(out)


def encode_frame(header: Header, body: bytes = b"") -> bytes:
    """A complete escaped frame with both delimiters."""
    content = encode_header(header, len(body)) + body
    return b"\x7e" + escape(content + bytes((check_code(content),))) + b"\x7e"


@functools.lru_cache(maxsize=65_536)
def header_middle(phone: str, version: Version, protocol_version: int) -> bytes:
    """The header bytes between the properties and the serial: (2019: the protocol version
    byte and) the terminal number in BCD. The same for every message of a connection."""
    if version == Version.V2019:
        return bytes((protocol_version & 0xFF,)) + encode_bcd(phone, 10)
    return encode_bcd(phone, 6)


_ID_AND_PROPS = struct.Struct(">HH")
_SERIAL = struct.Struct(">H")


def encode_platform_frame(
    msg_id: int, middle: bytes, version: Version, serial: int, body: bytes
) -> bytes:
    """`encode_frame` for a whole, unencrypted message with `header_middle` already encoded:
    the gateway's replies, one per position, without building a Header each time."""
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}; subpackage it")
    props = len(body) | (VERSION_BIT if version == Version.V2019 else 0)
    content = _ID_AND_PROPS.pack(msg_id, props) + middle + _SERIAL.pack(serial & 0xFFFF) + body
    return b"\x7e" + escape(content + bytes((check_code(content),))) + b"\x7e"


def decode_content(content: bytes) -> Frame:
    """Read unescaped `header | body | check` (the bytes between two 7E) as a frame."""
    if len(content) < 13:
        raise FrameError("short", f"{len(content)} bytes cannot hold a header and check code")
    if check_code(content[:-1]) != content[-1]:
        raise FrameError(
            "bad_check", f"check code {content[-1]:02x}, computed {check_code(content[:-1]):02x}"
        )
    data = content[:-1]
    msg_id = int.from_bytes(data[0:2], "big")
    props = int.from_bytes(data[2:4], "big")
    length = props & BODY_LENGTH_MASK
    if props & VERSION_BIT:
        version = Version.V2019
        protocol_version = data[4]
        phone = decode_bcd(data[5:15])
        offset = 15
    else:
        version = Version.V2013
        protocol_version = 0
        phone = decode_bcd(data[4:10])
        offset = 10
    if len(data) < offset + 2:
        raise FrameError("short", "header cut short")
    serial = int.from_bytes(data[offset : offset + 2], "big")
    offset += 2
    total = index = 0
    if props & SUBPACKAGE_BIT:
        if len(data) < offset + 4:
            raise FrameError("short", "subpackage fields cut short")
        total = int.from_bytes(data[offset : offset + 2], "big")
        index = int.from_bytes(data[offset + 2 : offset + 4], "big")
        offset += 4
        if total == 0 or not 1 <= index <= total:
            raise FrameError("bad_subpackage", f"package {index} of {total}")
    body = data[offset:]
    if len(body) != length:
        raise FrameError("bad_length", f"properties say {length} body bytes, frame has {len(body)}")
    header = Header(
        msg_id=msg_id,
        phone=phone,
        serial=serial,
        version=version,
        protocol_version=protocol_version,
        encryption=(props & ENCRYPTION_MASK) >> 10,
        package_total=total,
        package_index=index,
    )
    return Frame(header, body)


def decode_frame(wire: bytes) -> Frame:
    """One escaped frame, with or without its 7E delimiters."""
    return decode_content(unescape(wire.strip(b"\x7e")))


@dataclass(slots=True)
class FrameSplitter:
    """Cuts a TCP byte stream into frame contents; bounds what it holds for one connection.

    Bytes before the first 7E and empty frames (7E 7E, a terminal's idle filler) are skipped.
    A frame longer than `max_frame_bytes` is dropped whole and reported as oversize.
    """

    max_frame_bytes: int = 4096
    _buffer: bytearray = field(default_factory=bytearray)
    _in_frame: bool = False
    _discarding: bool = False

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an unfinished frame held now."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[bytes | FrameError]:
        """Escaped frame contents (between the delimiters), or an error for an oversize one."""
        start = 0
        n = len(data)
        while start < n:
            if not self._in_frame:
                at = data.find(b"\x7e", start)
                if at < 0:
                    return
                self._in_frame = True
                start = at + 1
                continue
            end = data.find(b"\x7e", start)
            chunk = data[start : n if end < 0 else end]
            if not self._discarding:
                if len(self._buffer) + len(chunk) > self.max_frame_bytes:
                    self._buffer.clear()
                    self._discarding = True
                    yield FrameError("oversize", f"frame over {self.max_frame_bytes} bytes")
                else:
                    self._buffer += chunk
            if end < 0:
                return
            # The closing 7E; it may also open the next frame, which the standard allows
            # terminals to share, so the splitter stays inside a frame.
            start = end + 1
            if self._discarding:
                self._discarding = False
            elif self._buffer:
                yield bytes(self._buffer)
                self._buffer.clear()


@dataclass(slots=True)
class _Pending:
    parts: dict[int, bytes]
    total: int
    started_s: float
    size: int = 0
    requested: bool = False  # the missing packages were asked for again (0x8003)


@dataclass(slots=True)
class Reassembler:
    """Joins subpackaged messages; bounded in messages, bytes and time (the clock comes in).

    Parts of one message carry consecutive serial numbers, so a message is keyed by its
    message id, its package count and the serial of its first package.
    """

    max_messages: int = 8
    max_bytes: int = 256 * 1024
    timeout_s: float = 60.0
    _pending: dict[tuple[int, int, int], _Pending] = field(default_factory=dict)

    @property
    def pending_messages(self) -> int:
        """Messages with parts still missing."""
        return len(self._pending)

    def missing(self, frame: Frame) -> list[int]:
        """Package indexes (1-based) still missing of the message this part belongs to."""
        h = frame.header
        pending = self._pending.get(self._key(h))
        if pending is None:
            return []
        return [i for i in range(1, pending.total + 1) if i not in pending.parts]

    @staticmethod
    def _key(h: Header) -> tuple[int, int, int]:
        return (h.msg_id, h.package_total, (h.serial - h.package_index + 1) & 0xFFFF)

    def add(self, frame: Frame, now_s: float) -> Frame | None:
        """The whole message once its last part arrives, else None."""
        h = frame.header
        if not h.is_subpackage:
            return frame
        self.expire(now_s)
        key = self._key(h)
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self.max_messages:
                oldest = min(self._pending, key=lambda k: self._pending[k].started_s)
                del self._pending[oldest]
            pending = self._pending[key] = _Pending({}, h.package_total, now_s)
        if h.package_index not in pending.parts:
            pending.size += len(frame.body)
            pending.parts[h.package_index] = frame.body
        if pending.size > self.max_bytes:
            del self._pending[key]
            raise FrameError("oversize", f"subpackaged message over {self.max_bytes} bytes")
        if len(pending.parts) < pending.total:
            return None
        del self._pending[key]
        body = b"".join(pending.parts[i] for i in range(1, pending.total + 1))
        whole = Header(
            msg_id=h.msg_id,
            phone=h.phone,
            serial=key[2],
            version=h.version,
            protocol_version=h.protocol_version,
            encryption=h.encryption,
        )
        return Frame(whole, body)

    def overdue(self, now_s: float, after_s: float) -> list[tuple[Header, list[int]]]:
        """Messages still missing packages `after_s` after their first arrived, each once:
        the header of the whole message (serial of its first package) and what is missing.
        """
        out = []
        for (msg_id, _total, first_serial), pending in self._pending.items():
            if pending.requested or now_s - pending.started_s < after_s:
                continue
            pending.requested = True
            missing = [i for i in range(1, pending.total + 1) if i not in pending.parts]
            out.append((Header(msg_id=msg_id, phone="", serial=first_serial), missing))
        return out

    def request_missing(self, frame: Frame) -> tuple[int, list[int]]:
        """The first serial and the missing packages of this part's message, marked as asked
        for (so `overdue` does not ask again)."""
        key = self._key(frame.header)
        pending = self._pending.get(key)
        if pending is None:
            return key[2], []
        pending.requested = True
        return key[2], [i for i in range(1, pending.total + 1) if i not in pending.parts]

    def expire(self, now_s: float) -> int:
        """Forget messages whose parts stopped coming; return how many."""
        stale = [k for k, p in self._pending.items() if now_s - p.started_s > self.timeout_s]
        for k in stale:
            del self._pending[k]
        return len(stale)


def split_into_packages(header: Header, body: bytes, part_bytes: int = 1023) -> list[bytes]:
    """Encode a long body as subpackaged frames with consecutive serials from header.serial."""
    parts = [body[i : i + part_bytes] for i in range(0, len(body), part_bytes)] or [b""]
    total = len(parts)
    frames = []
    for index, part in enumerate(parts, start=1):
        h = Header(
            msg_id=header.msg_id,
            phone=header.phone,
            serial=(header.serial + index - 1) & 0xFFFF,
            version=header.version,
            protocol_version=header.protocol_version,
            encryption=header.encryption,
            package_total=total,
            package_index=index,
        )
        frames.append(encode_frame(h, part))
    return frames
