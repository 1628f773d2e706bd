"""A fast reader for simple, well-formed PDFs: metadata Subject and Title, and proof the first page reads.

``race-harness audit`` reads every file of a receipts directory; parsing each with pypdf costs
about a millisecond, most of it building objects the audit never looks at. Receipts written by
one program are simple PDFs: a classic cross-reference table, one trailer, an Info dictionary of
strings, a flat page tree and one Flate-compressed content stream. This module reads exactly
that and nothing else: ``read_simple_pdf`` returns ``(subject, title)`` only when every step is
ordinary, and None on anything unusual (incremental updates, object or xref streams, encryption,
a missing Info dictionary, other filters, a stream whose length or compression is off, a file
that does not end in ``%%EOF``...), so the caller falls back to pypdf, which decides.

It never calls a file readable that pypdf would not: it only says "readable" after the same
steps pypdf takes succeed here strictly (the content stream decompresses completely, with no
recovery), and it never says "unreadable" at all. Strings are decoded by pypdf's own
``create_string_object``, so Subject and Title are what pypdf returns.
"""

from __future__ import annotations

import re
import zlib
from typing import Any, NamedTuple

_WS = b" \t\r\n"  # only the whitespace every pypdf pattern accepts (not \\f, \\v or NUL): others fall back
_LITERAL_STOP = re.compile(rb"[()\\]")
# The last lines, each keyword on its own line as pypdf reads them (backwards, line by line).
_TAIL = re.compile(rb"[\r\n]startxref[ \t]*(?:\r\n|\r|\n)(\d+)[ \t]*(?:\r\n|\r|\n)%%EOF[ \t\r\n]*\Z")
_XREF_SECTION = re.compile(rb"(\d+)[ \t]+(\d+)[ \t]*(?:\r\n|\r|\n)")
_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])(?: \r| \n|\r\n)")
_OBJ_HEAD = re.compile(rb"(\d+)[ \t\r\n]+(\d+)[ \t\r\n]+obj(?=[ \t\r\n()<>\[\]{}/%])")
_STREAM_START = re.compile(rb"[ \t\r\n]*stream(?:\r\n|\n)")
_STREAM_END = re.compile(rb"(?:\r\n|\r|\n)?endstream(?=[ \t\r\n]|$)")
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12,
            ord("("): 40, ord(")"): 41, ord("\\"): 92}
_OCTAL = b"01234567"
_MAX_DEPTH = 32  # nesting of arrays and dictionaries, and of the page tree
# Far below pypdf's limits (75 MB, 100 000 elements), so nothing read here is refused by pypdf for its size.
_MAX_FILE = 4_000_000
_MAX_OUTPUT = 8_000_000
_MAX_ITEMS = 10_000


class Unusual(Exception):
    """Something this reader does not handle: the caller reads the file with pypdf instead."""


class Ref(NamedTuple):
    num: int
    gen: int


_END = rb"(?=[ \t\r\n()<>\[\]{}/%]|\Z)"  # a token ends at whitespace, a delimiter or the end
_TOKEN = re.compile(
    rb"[ \t\r\n]*"  # whitespace (a comment inside an object is unusual: pypdf reads those)
    rb"(?:(?P<ref>(?P<rnum>\d+)[ \t\r\n]+(?P<rgen>\d+)[ \t\r\n]+R" + _END + rb")"
    rb"|(?P<int>[+-]?\d+" + _END + rb")"
    rb"|(?P<real>[+-]?(?:\d+\.\d*|\.\d+)" + _END + rb")"
    rb"|(?P<name>/[^\x00-\x20\x7f-\xff()<>\[\]{}/%]*)" + _END +  # regular characters only
    rb"|(?P<dopen><<)|(?P<dclose>>>)|(?P<aopen>\[)|(?P<aclose>\])|(?P<str>\()"
    rb"|<(?P<hex>[0-9A-Fa-f \t\r\n]*)>"
    rb"|(?P<kw>true|false|null)" + _END + rb")")
_TOKEN_SPACE = re.compile(rb"[ \t\r\n]*")
_KEYWORDS = {b"true": True, b"false": False, b"null": None}
_HEX_SPACE = re.compile(rb"[ \t\r\n]+")


def _literal(data: bytes, pos: int) -> tuple[bytes, int]:
    """The string whose ``(`` is at ``pos``, escapes resolved as pypdf resolves them."""
    out = bytearray()
    depth = 1
    pos += 1
    while True:
        m = _LITERAL_STOP.search(data, pos)
        if m is None:
            raise Unusual("unterminated string")
        out += data[pos:m.start()]
        pos = m.start()
        c = data[pos]
        if c == 40:
            depth += 1
            out.append(c)
            pos += 1
        elif c == 41:
            depth -= 1
            pos += 1
            if depth == 0:
                return bytes(out), pos
            out.append(c)
        else:  # backslash
            nxt = data[pos + 1] if pos + 1 < len(data) else -1
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                pos += 2
            elif nxt != -1 and nxt in _OCTAL:
                end = pos + 2
                while end < pos + 4 and end < len(data) and data[end] in _OCTAL:
                    end += 1
                value = int(data[pos + 1:end], 8)
                if value > 255:
                    raise Unusual("octal escape over 255")
                out.append(value)
                pos = end
            else:  # line continuations and rarer escapes: pypdf's handling is left to pypdf
                raise Unusual("unusual escape in a string")


def _parse(data: bytes, pos: int) -> tuple[Any, int]:
    """The object starting at ``pos`` (after whitespace) and the position after it.

    Names are ``str`` (without the slash), strings ``bytes``, references ``Ref``; dictionaries are keyed
    by name.
    """
    stack: list[tuple[bool, list]] = []  # open containers: (is a dictionary, items so far)
    while True:
        m = _TOKEN.match(data, pos)
        if m is None:
            raise Unusual("not an object this reader knows")
        pos = m.end()
        kind = m.lastgroup
        if kind == "name":  # the commonest first
            raw = m.group("name")
            if b"#" in raw:
                raise Unusual("escaped name")
            value: Any = raw[1:].decode("ascii")
        elif kind == "int":
            value = int(m.group("int"))
        elif kind == "ref":
            value = Ref(int(m.group("rnum")), int(m.group("rgen")))
        elif kind == "str":
            value, pos = _literal(data, pos - 1)
        elif kind == "dopen" or kind == "aopen":
            if len(stack) >= _MAX_DEPTH:
                raise Unusual("nested too deep")
            stack.append((kind == "dopen", []))
            continue
        elif kind == "dclose" or kind == "aclose":
            if not stack or stack[-1][0] != (kind == "dclose"):
                raise Unusual("unbalanced brackets")
            is_dict, items = stack.pop()
            if len(items) > _MAX_ITEMS:
                raise Unusual("a large array or dictionary")
            if is_dict:
                keys = items[::2]
                if len(items) % 2 or not all(type(k) is str for k in keys):
                    raise Unusual("dictionary keys are not names")
                value = dict(zip(keys, items[1::2]))
            else:
                value = items
        elif kind == "hex":
            digits = _HEX_SPACE.sub(b"", m.group("hex"))
            value = bytes.fromhex((digits + b"0" if len(digits) % 2 else digits).decode("ascii"))
        elif kind == "real":
            value = float(m.group("real"))
        else:
            value = _KEYWORDS[m.group("kw")]
        if not stack:
            return value, pos
        stack[-1][1].append(value)


class _Doc:
    def __init__(self, data: bytes) -> None:
        self.data = data
        tail = _TAIL.search(data, max(0, len(data) - 1024))
        if not data.startswith(b"%PDF-") or tail is None:
            raise Unusual("no header or no startxref/%%EOF at the end")
        pos = int(tail.group(1))
        if not data.startswith(b"xref", pos):
            raise Unusual("not a classic xref table (an xref stream?)")
        pos = _TOKEN_SPACE.match(data, pos + 4).end()
        self.offsets: dict[int, tuple[int, int]] = {}  # object number -> (offset, generation) in use
        listed: set[int] = set()
        while (section := _XREF_SECTION.match(data, pos)) is not None:
            first, count = int(section.group(1)), int(section.group(2))
            pos = section.end()
            for i in range(count):
                entry = _XREF_ENTRY.match(data, pos)
                if entry is None:
                    raise Unusual("bad xref entry")
                pos = entry.end()
                if first + i in listed:
                    raise Unusual("an object listed twice")
                listed.add(first + i)
                if entry.group(3) == b"n":
                    self.offsets[first + i] = (int(entry.group(1)), int(entry.group(2)))
            pos = _TOKEN_SPACE.match(data, pos).end()
        if not data.startswith(b"trailer", pos):
            raise Unusual("no trailer after the xref table")
        trailer, _ = _parse(data, pos + 7)
        if not isinstance(trailer, dict) or {"Prev", "Encrypt", "XRefStm"} & trailer.keys():
            raise Unusual("an incremental update, encryption or a hybrid xref")
        self.trailer = trailer

    def object_at(self, ref: Any) -> tuple[Any, int]:
        """The indirect object ``ref`` names, and the position after it."""
        if not isinstance(ref, Ref) or ref.num not in self.offsets:
            raise Unusual("not a reference to an object in the table")
        offset, gen = self.offsets[ref.num]
        head = _OBJ_HEAD.match(self.data, offset)
        if head is None or int(head.group(1)) != ref.num or int(head.group(2)) != gen or gen != ref.gen:
            raise Unusual("the xref table points elsewhere")
        return _parse(self.data, head.end())

    def get(self, value: Any) -> Any:
        """A value, resolved when it is a reference."""
        return self.object_at(value)[0] if isinstance(value, Ref) else value

    def dictionary(self, value: Any, type_: str | None = None) -> dict:
        found = self.get(value)
        if not isinstance(found, dict) or (type_ is not None and found.get("Type") != type_):
            raise Unusual(f"expected a {type_ or 'dictionary'}")
        return found

    def first_page(self) -> dict:
        catalog = self.dictionary(self.trailer.get("Root"), "Catalog")
        node = self.dictionary(catalog.get("Pages"), "Pages")
        for _ in range(_MAX_DEPTH):
            kids, count = self.get(node.get("Kids")), self.get(node.get("Count"))
            if not isinstance(kids, list) or not kids or not isinstance(count, int) or count < 1:
                raise Unusual("an empty or odd page tree")
            node = self.dictionary(kids[0])
            if node.get("Type") == "Page":
                return node
            if node.get("Type") != "Pages":
                raise Unusual("a page tree node of another type")
        raise Unusual("page tree too deep")

    def content_stream(self, page: dict) -> bytes:
        """The page's content stream decoded (one stream, uncompressed or Flate without parameters)."""
        stream_dict, pos = self.object_at(page.get("Contents"))
        if not isinstance(stream_dict, dict):
            raise Unusual("contents are not a stream")
        length = self.get(stream_dict.get("Length"))
        filters = stream_dict.get("Filter")
        if filters is None:
            flate = False
        elif filters in ("FlateDecode", ["FlateDecode"]):
            flate = True
        else:
            raise Unusual("another filter")
        if not isinstance(length, int) or isinstance(length, bool) or length < 0 or \
                {"DecodeParms", "F", "FFilter", "DL"} & stream_dict.keys():
            raise Unusual("an unusual stream")
        start = _STREAM_START.match(self.data, pos)
        if start is None:
            raise Unusual("no stream keyword")
        raw = self.data[start.end():start.end() + length]
        if len(raw) != length or _STREAM_END.match(self.data, start.end() + length) is None:
            raise Unusual("the stream's length is off")
        if not flate:
            return raw
        decompressor = zlib.decompressobj()
        try:
            out = decompressor.decompress(raw, max_length=_MAX_OUTPUT)
        except zlib.error as exc:
            raise Unusual(f"the stream does not decompress: {exc}") from None
        if not decompressor.eof or decompressor.unconsumed_tail or decompressor.unused_data.strip(_WS):
            raise Unusual("the stream is incomplete, too long, or has bytes after it")
        return out


def _text(value: Any) -> str | None:
    """A metadata value as pypdf's ``DocumentInformation.subject`` returns it, ``or None``."""
    from pypdf.generic import TextStringObject, create_string_object

    if value is None:
        return None
    if not isinstance(value, bytes):
        raise Unusual("metadata value is not a string")
    decoded = create_string_object(value)
    if not isinstance(decoded, TextStringObject):
        raise Unusual("metadata string is not text")
    return str(decoded) or None


def read_simple_pdf(data: bytes) -> tuple[str | None, str | None] | None:
    """``(subject, title)`` of a simple, well-formed PDF whose first page's content decodes; else None.

    None means "not read here": read the file with pypdf, which may still find it readable.
    """
    try:
        if len(data) > _MAX_FILE:
            raise Unusual("a large file")
        doc = _Doc(data)
        if "Info" not in doc.trailer:
            raise Unusual("no Info dictionary")
        info = doc.dictionary(doc.trailer["Info"])
        subject, title = _text(info.get("Subject")), _text(info.get("Title"))
        doc.content_stream(doc.first_page())
        return subject, title
    except (Unusual, ValueError, IndexError, TypeError, AttributeError, RecursionError):
        return None
