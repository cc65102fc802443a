"""Rule 4, the archive itself: what zipfile reads is all the wheel holds.

zipfile trusts the central directory alone. Installers that stream a wheel read
its local headers instead, and others find the end record another way, so a
wheel can show the gate one set of members and install another: a directory
entry whose local header names ``x.pth`` (zipfile never opens directories), a
local entry that no central entry names, a stub before the archive (zipfile
shifts every offset to fit), bytes after the end record. The gate signs only
archives that every reader reads the same way: the members' local entries tile
the file from its first byte, each saying exactly what its central entry says
(name, method, flags, sizes and CRC, in the header or in its data descriptor),
then the central directory, then the end record and its comment up to the
last byte.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from typing import BinaryIO

from factory.admission.model import AdmissionError

_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # signature ... name length, extra length
_END = struct.Struct("<4sHHHHIIH")  # signature, disks, entries, size, offset, comment
_LOCAL_SIG, _END_SIG, _END64_SIG = b"PK\x03\x04", b"PK\x05\x06", b"PK\x06\x06"
_LOCATOR_SIG = b"PK\x06\x07"
_DESCRIPTOR_SIG = b"PK\x07\x08"
_END64_SIZE, _LOCATOR_SIZE = 56, 20
_MAX32 = 0xFFFFFFFF
_HINT = ("installers that read the archive another way would install something else; "
         "the build produced it")


def check_layout(filename: str, archive: zipfile.ZipFile, raw: BinaryIO) -> None:
    """Refuse an archive whose bytes are not exactly its members, central directory
    and end record, in that order, each agreeing with the central directory."""
    def refuse(why: str) -> AdmissionError:
        return AdmissionError(f"{filename}: {why}", _HINT)

    size = raw.seek(0, 2)
    position = 0
    for info in sorted(archive.infolist(), key=lambda i: i.header_offset):
        if info.header_offset != position:
            raise refuse(f"member {info.filename!r} starts at byte {info.header_offset}, "
                         f"not {position}: the archive holds bytes no member accounts for, "
                         "or members that overlap")
        position = _entry_end(info, raw, refuse)
    if position != archive.start_dir:
        raise refuse(f"{archive.start_dir - position} bytes between the last member and the "
                     "central directory")
    end = _end_record(raw, size)
    if end is None:
        raise refuse("its end record is not the last thing in the file")
    signature, disk, cd_disk, here, entries, cd_size, cd_offset, _ = _END.unpack(
        _read(raw, end, _END.size))
    central_end = archive.start_dir + cd_size if cd_size != _MAX32 else None
    zip64 = end - _LOCATOR_SIZE - _END64_SIZE
    if central_end is None or central_end != end:
        locator = _read(raw, end - _LOCATOR_SIZE, _LOCATOR_SIZE)
        if _read(raw, zip64, 4) != _END64_SIG or locator[:4] != _LOCATOR_SIG or struct.unpack(
                "<Q", locator[8:16])[0] != zip64:
            raise refuse("bytes between the central directory and its end record")
        cd_size = struct.unpack("<Q", _read(raw, zip64 + 40, 8))[0]
        if archive.start_dir + cd_size != zip64:
            raise refuse("bytes between the central directory and its end record")
    elif cd_offset != archive.start_dir or disk or cd_disk:
        raise refuse("its end record places the central directory elsewhere")
    count = len(archive.infolist())
    if 0xFFFF not in (here, entries) and (here, entries) != (count, count):
        raise refuse(f"its end record counts {entries} members, its central directory "
                     f"holds {count}")


def _read(raw: BinaryIO, at: int, size: int) -> bytes:
    raw.seek(at)
    return raw.read(size)


def _entry_end(info: zipfile.ZipInfo, raw: BinaryIO,
               fail: Callable[[str], AdmissionError]) -> int:
    """Where the local entry of ``info`` ends (header, name, extra, data, descriptor)."""
    head = _read(raw, info.header_offset, _LOCAL.size)
    if len(head) != _LOCAL.size:
        raise fail(f"member {info.filename!r} has no local header")
    (signature, _, flags, method, _, _, crc, compressed, size, name_length,
     extra_length) = _LOCAL.unpack(head)
    name = raw.read(name_length)
    extra = raw.read(extra_length)
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    if signature != _LOCAL_SIG or name.decode(encoding, "replace") != info.orig_filename:
        raise fail(f"member {info.filename!r}: its local header names "
                   f"{name.decode(encoding, 'replace')!r}")
    if method != info.compress_type or (flags ^ info.flag_bits) & 0x09:
        raise fail(f"member {info.filename!r}: its local header says another "
                   "compression, encryption or layout than the central directory")
    zip64 = _zip64_sizes(extra, size, compressed)
    if zip64 is not None:
        size, compressed = zip64
    data_end = info.header_offset + _LOCAL.size + name_length + extra_length + info.compress_size
    if not flags & 0x08:
        if (crc, compressed, size) != (info.CRC, info.compress_size, info.file_size):
            raise fail(f"member {info.filename!r}: its local header gives other sizes or "
                       "CRC than the central directory")
        return data_end
    wide = zip64 is not None or max(info.compress_size, info.file_size) >= _MAX32
    fields = struct.Struct("<IQQ" if wide else "<III")
    lead = 4 if _read(raw, data_end, 4) == _DESCRIPTOR_SIG else 0
    found = _read(raw, data_end + lead, fields.size)
    if len(found) != fields.size or fields.unpack(found) != (
            info.CRC, info.compress_size, info.file_size):
        raise fail(f"member {info.filename!r}: its data descriptor disagrees with the "
                   "central directory")
    return data_end + lead + fields.size


def _zip64_sizes(extra: bytes, size: int, compressed: int) -> tuple[int, int] | None:
    """(size, compressed) from a local zip64 extra field, when there is one."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack("<HH", extra[at:at + 4])
        body = extra[at + 4:at + 4 + length]
        if kind == 1:
            values = [struct.unpack("<Q", body[i:i + 8])[0] for i in range(0, len(body) - 7, 8)]
            if size == _MAX32 and values:
                size = values.pop(0)
            if compressed == _MAX32 and values:
                compressed = values.pop(0)
            return size, compressed
        at += 4 + length
    return None


def _end_record(raw: BinaryIO, size: int) -> int | None:
    """The offset of the end record whose comment ends exactly at the end of the file."""
    start = max(0, size - _END.size - 0xFFFF)
    tail = _read(raw, start, size - start)
    at = tail.rfind(_END_SIG)
    while at != -1:
        if at + _END.size <= len(tail):
            comment = struct.unpack("<H", tail[at + 20:at + 22])[0]
            if start + at + _END.size + comment == size:
                return start + at
        at = tail.rfind(_END_SIG, 0, at)
    return None
