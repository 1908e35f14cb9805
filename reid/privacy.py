"""Image files without their location: GPS EXIF, XMP and IPTC removed, pixels untouched.

Where an endangered leopard was photographed is poaching-sensitive. Callers who may not see
locations get the stored photo through `without_location`: a JPEG keeps its compressed
pixels byte for byte (only metadata segments are rewritten or dropped), so nothing is lost
to a re-encode; other formats are re-encoded as PNG without any metadata. The stored
original is never changed.
"""

from __future__ import annotations

import io
import struct

from PIL import Image, ImageOps

from reid.errors import ImageError

_GPS_IFD = 0x8825
_SOI = b"\xff\xd8"


def without_location(data: bytes) -> tuple[bytes, str]:
    """(bytes, media type) of the image with every location-bearing metadata field removed."""
    if data.startswith(_SOI):
        return _jpeg_without_location(data), "image/jpeg"
    return _reencoded_png(data), "image/png"


def _jpeg_without_location(data: bytes) -> bytes:
    out = [_SOI]
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError("stored JPEG has a damaged segment structure")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the compressed pixels and everything after
            out.append(data[pos:])
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out.append(data[pos:pos + 2])
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        segment = data[pos:pos + 2 + length]
        body = segment[4:]
        pos += 2 + length
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            exif = Image.Exif()
            exif.load(body[6:])
            if _GPS_IFD in exif:
                del exif[_GPS_IFD]
            # the exif's own bytes start with "Exif\0\0"; keep orientation, time, camera
            new = exif.tobytes()
            out.append(b"\xff\xe1" + struct.pack(">H", len(new) + 2) + new)
        elif marker in (0xE1, 0xED):  # XMP (may carry exif:GPS*), IPTC/Photoshop (place names)
            continue
        else:
            out.append(segment)
    return b"".join(out)


def _reencoded_png(data: bytes) -> bytes:
    try:
        img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        buf = io.BytesIO()
        img.save(buf, format="PNG")  # no exif=, no pnginfo=: no metadata at all
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"stored image cannot be re-encoded without its metadata ({exc})") from None
    return buf.getvalue()
