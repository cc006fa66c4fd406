"""Just enough of a PDF reader to check how Chromium printed the report (no pypdf here).

Reads uncompressed or Flate-compressed objects (object streams too), walks the page tree in
order, and runs each page's content stream through a small interpreter that tracks the
graphics state (``q``/``Q``/``cm``) and the text state (``Tf``, ``Tm``, ``Td``, ``TD``,
``T*``, ``Tj``, ``TJ``, ``'``, ``"``), mapping glyphs through each font's ``/ToUnicode`` CMap.
Each page gives its text runs (string, x, y in points from the page's bottom-left, font size
on the page) and the placed images (``Do`` of an image XObject: its box on the page).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

_OBJ = re.compile(rb"(\d+)\s+(\d+)\s+obj\b")
_TOKEN = re.compile(rb"""
    (?P<ws>\s+|%[^\r\n]*)
  | (?P<dict_open><<) | (?P<dict_close>>>)
  | (?P<hex><[0-9A-Fa-f\s]*>)
  | (?P<lit>\()
  | (?P<arr_open>\[) | (?P<arr_close>\])
  | (?P<name>/[^\s/\[\]()<>{}%]*)
  | (?P<num>[+-]?(?:\d+\.?\d*|\.\d+))
  | (?P<word>[^\s/\[\]()<>{}%]+)
""", re.X)


@dataclass
class Ref:
    num: int


@dataclass
class Op:
    name: str


@dataclass
class TextRun:
    text: str
    x: float
    y: float
    size: float


@dataclass
class Placed:
    name: str
    x: float
    y: float
    width: float
    height: float


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    paint: str                      # the painting operator: "S" (stroke), "f" (fill), "B" (both)
    stroke: tuple[float, ...]
    fill: tuple[float, ...]


@dataclass
class Page:
    width: float
    height: float
    texts: list[TextRun] = field(default_factory=list)
    images: list[Placed] = field(default_factory=list)
    rects: list[Rect] = field(default_factory=list)

    def lines(self, tol: float = 2.0) -> list[tuple[float, str]]:
        """Text runs joined into lines, top to bottom: ``[(y, text)]``."""
        rows: list[list[TextRun]] = []
        for run in sorted(self.texts, key=lambda r: (-r.y, r.x)):
            if rows and abs(rows[-1][0].y - run.y) <= tol:
                rows[-1].append(run)
            else:
                rows.append([run])
        return [(row[0].y, "".join(r.text for r in sorted(row, key=lambda r: r.x)).strip()) for row in rows]


def _literal(data: bytes, i: int) -> tuple[bytes, int]:
    """A literal string starting after its '(' at ``i``: (bytes, index after ')')."""
    out, depth = bytearray(), 1
    escapes = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}
    while i < len(data):
        c = data[i]
        if c == 0x5C:  # backslash
            i += 1
            nxt = data[i]
            if nxt in escapes:
                out += escapes[nxt]
            elif 0x30 <= nxt <= 0x37:
                j = i
                while j < i + 3 and j < len(data) and 0x30 <= data[j] <= 0x37:
                    j += 1
                out.append(int(data[i:j], 8) & 0xFF)
                i = j - 1
            elif nxt in (0x0A, 0x0D):
                pass
            else:
                out.append(nxt)
        elif c == 0x28:
            depth += 1
            out.append(c)
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return bytes(out), i + 1
            out.append(c)
        else:
            out.append(c)
        i += 1
    return bytes(out), i


def tokens(data: bytes):
    """PDF tokens: numbers, names (str starting '/'), bytes (strings), lists, dicts, Ref, Op."""
    stack: list[list] = [[]]
    i = 0
    while i < len(data):
        m = _TOKEN.match(data, i)
        if m is None:
            i += 1
            continue
        kind, text = m.lastgroup, m.group()
        i = m.end()
        if kind == "ws":
            continue
        if kind == "lit":
            value, i = _literal(data, i)
            stack[-1].append(value)
        elif kind == "hex":
            digits = re.sub(rb"\s", b"", text[1:-1])
            stack[-1].append(bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode()))
        elif kind in ("arr_open", "dict_open"):
            stack.append([kind])
        elif kind in ("arr_close", "dict_close"):
            items = stack.pop()
            opener, items = items[0], items[1:]
            if opener == "dict_open":
                stack[-1].append({str(items[k]): items[k + 1] for k in range(0, len(items) - 1, 2)})
            else:
                stack[-1].append(items)
        elif kind == "name":
            stack[-1].append(text.decode("latin-1"))
        elif kind == "num":
            stack[-1].append(float(text))
        elif text == b"R" and len(stack[-1]) >= 2 and all(isinstance(v, float) for v in stack[-1][-2:]):
            stack[-1][-2:] = [Ref(int(stack[-1][-2]))]
        elif text == b"ID":  # inline image: skip to EI
            end = data.find(b"EI", i)
            i = len(data) if end < 0 else end + 2
        else:
            stack[-1].append(Op(text.decode("latin-1")))
        if len(stack) == 1 and stack[0] and isinstance(stack[0][-1], Op):
            yield from stack[0]
            stack[0] = []
    yield from stack[0]


class Pdf:
    """The objects of a PDF file and its pages, in reading order."""

    def __init__(self, path: str | Path):
        self.data = Path(path).read_bytes()
        self.objects: dict[int, object] = {}
        self.streams: dict[int, bytes] = {}
        self._read_objects()
        self._fonts: dict[int, dict[int, str]] = {}

    # ------------------------------------------------------------------ objects
    def _read_objects(self) -> None:
        data = self.data
        for m in _OBJ.finditer(data):
            num, start = int(m.group(1)), m.end()
            end = data.find(b"endobj", start)
            body = data[start:end if end >= 0 else len(data)]
            s = body.find(b"stream")
            head = body if s < 0 else body[:s]
            parsed = list(tokens(head))
            value = parsed[0] if parsed else None
            self.objects[num] = value
            if s >= 0 and isinstance(value, dict):
                raw_start = start + s + len(b"stream")
                if data[raw_start:raw_start + 2] == b"\r\n":
                    raw_start += 2
                elif data[raw_start:raw_start + 1] in (b"\n", b"\r"):
                    raw_start += 1
                length = value.get("/Length")
                if isinstance(length, Ref):
                    length = None  # resolved below, once every object is read
                raw = data[raw_start:raw_start + int(length)] if length is not None else \
                    data[raw_start:data.find(b"endstream", raw_start)]
                self.streams[num] = raw
        for num, value in list(self.objects.items()):
            if isinstance(value, dict) and isinstance(value.get("/Length"), Ref):
                length = self.resolve(value["/Length"])
                start = self.data.find(self.streams[num][:16]) if self.streams[num] else -1
                if start >= 0:
                    self.streams[num] = self.data[start:start + int(length)]
        for num, value in list(self.objects.items()):  # objects packed in object streams
            if isinstance(value, dict) and value.get("/Type") == "/ObjStm":
                body = self.stream(num)
                first, n = int(value["/First"]), int(value["/N"])
                header = [int(float(t)) for t in body[:first].split()]
                for k in range(n):
                    obj, offset = header[2 * k], header[2 * k + 1]
                    stop = header[2 * k + 3] if k + 1 < n else len(body) - first
                    parsed = list(tokens(body[first + offset:first + stop]))
                    self.objects.setdefault(obj, parsed[0] if parsed else None)

    def resolve(self, value):
        while isinstance(value, Ref):
            value = self.objects.get(value.num)
        return value

    def stream(self, num: int) -> bytes:
        raw = self.streams.get(num, b"")
        filters = self.resolve((self.objects.get(num) or {}).get("/Filter"))
        filters = filters if isinstance(filters, list) else [filters] if filters else []
        for f in filters:
            if f == "/FlateDecode":
                raw = zlib.decompress(raw)
            else:
                return b""  # images (DCT) and the like: not needed here
        return raw

    # ------------------------------------------------------------------ pages
    def page_objects(self) -> list[tuple[int, dict, dict]]:
        """(object number, page dict, inherited attributes) of every page, in order."""
        root = self.resolve(next(v for v in self.objects.values()
                                 if isinstance(v, dict) and v.get("/Type") == "/Catalog")["/Pages"])
        out: list[tuple[int, dict, dict]] = []

        def walk(node_ref, inherited):
            node = self.resolve(node_ref)
            inh = dict(inherited)
            for key in ("/MediaBox", "/Resources"):
                if key in node:
                    inh[key] = node[key]
            if node.get("/Type") == "/Pages":
                for kid in node.get("/Kids", []):
                    walk(kid, inh)
            else:
                out.append((node_ref.num if isinstance(node_ref, Ref) else -1, node, inh))

        pages_ref = next(v for v in self.objects.values()
                         if isinstance(v, dict) and v.get("/Type") == "/Catalog")["/Pages"]
        walk(pages_ref, {})
        assert root is not None
        return out

    def _cmap(self, font_ref) -> dict[int, str]:
        num = font_ref.num if isinstance(font_ref, Ref) else id(font_ref)
        if num in self._fonts:
            return self._fonts[num]
        font = self.resolve(font_ref) or {}
        mapping: dict[int, str] = {}
        uni = font.get("/ToUnicode")
        if isinstance(uni, Ref):
            text = self.stream(uni.num).decode("latin-1")
            for block in re.findall(r"beginbfchar(.*?)endbfchar", text, re.S):
                for src, dst in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                    mapping[int(src, 16)] = bytes.fromhex(dst).decode("utf-16-be", "replace")
            for block in re.findall(r"beginbfrange(.*?)endbfrange", text, re.S):
                for lo, hi, dst in re.findall(
                    r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]+>|\[[^\]]*\])", block
                ):
                    lo_i, hi_i = int(lo, 16), int(hi, 16)
                    if dst.startswith("["):
                        for k, d in enumerate(re.findall(r"<([0-9A-Fa-f]+)>", dst)):
                            mapping[lo_i + k] = bytes.fromhex(d).decode("utf-16-be", "replace")
                    else:
                        base = int(dst[1:-1], 16)
                        for k in range(hi_i - lo_i + 1):
                            mapping[lo_i + k] = chr(base + k)
        two_byte = font.get("/Subtype") == "/Type0"
        mapping[-1] = "2" if two_byte else "1"  # bytes per code
        self._fonts[num] = mapping
        return mapping

    def _decode(self, raw: bytes, cmap: dict[int, str]) -> str:
        width = int(cmap.get(-1, "1"))
        codes = [int.from_bytes(raw[k:k + width], "big") for k in range(0, len(raw) - width + 1, width)]
        return "".join(cmap.get(c, chr(c) if width == 1 else "") for c in codes)

    def pages(self) -> list[Page]:
        out = []
        for _, page, inh in self.page_objects():
            box = [float(v) for v in self.resolve(page.get("/MediaBox", inh.get("/MediaBox")))]
            result = Page(width=box[2] - box[0], height=box[3] - box[1])
            resources = self.resolve(page.get("/Resources", inh.get("/Resources"))) or {}
            contents = page.get("/Contents")
            contents = contents if isinstance(contents, list) else [contents]
            data = b"\n".join(self.stream(c.num) for c in contents if isinstance(c, Ref))
            self._run(data, resources, result, [1, 0, 0, 1, 0, 0])
            out.append(result)
        return out

    def _run(self, data: bytes, resources: dict, page: Page, ctm0: list[float]) -> None:
        fonts = self.resolve(resources.get("/Font")) or {}
        xobjects = self.resolve(resources.get("/XObject")) or {}
        ctm, stack = list(ctm0), []
        tm = lm = [1, 0, 0, 1, 0, 0]
        font, size, leading = None, 0.0, 0.0
        stroke: tuple[float, ...] = (0.0,)
        fill: tuple[float, ...] = (0.0,)
        colours: list[tuple] = []
        pending: list[list[float]] = []
        operands: list = []

        def mul(a, b):  # a x b, matrices as [a b c d e f]
            return [a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
                    a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3],
                    a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5]]

        def show(text: str) -> None:
            if not text.strip():
                return
            m = mul(tm, ctm)
            scale = (m[2] ** 2 + m[3] ** 2) ** 0.5
            page.texts.append(TextRun(text, m[4], m[5], size * scale))

        for tok in tokens(data):
            if not isinstance(tok, Op):
                operands.append(tok)
                continue
            op = tok.name
            if op == "q":
                stack.append(list(ctm))
                colours.append((stroke, fill))
            elif op == "Q" and stack:
                ctm = stack.pop()
                stroke, fill = colours.pop() if colours else (stroke, fill)
            elif op in ("RG", "G", "K"):
                stroke = tuple(round(float(v), 3) for v in operands)
            elif op in ("rg", "g", "k"):
                fill = tuple(round(float(v), 3) for v in operands)
            elif op == "re" and len(operands) >= 4:
                x, y, w, h = (float(v) for v in operands[-4:])
                corners = [mul([1, 0, 0, 1, px, py], ctm)[4:] for px, py in ((x, y), (x + w, y + h))]
                pending.append([min(c[0] for c in corners), min(c[1] for c in corners),
                                abs(corners[1][0] - corners[0][0]), abs(corners[1][1] - corners[0][1])])
            elif op in ("S", "s", "f", "F", "f*", "B", "B*", "b", "b*", "n"):
                if op != "n":
                    kind = "S" if op in ("S", "s") else "f" if op in ("f", "F", "f*") else "B"
                    page.rects.extend(Rect(*r, kind, stroke, fill) for r in pending)
                pending = []
            elif op == "cm" and len(operands) >= 6:
                ctm = mul([float(v) for v in operands[-6:]], ctm)
            elif op == "BT":
                tm = lm = [1, 0, 0, 1, 0, 0]
            elif op == "Tf" and len(operands) >= 2:
                font, size = self._cmap(fonts.get(operands[-2])), float(operands[-1])
            elif op == "TL" and operands:
                leading = float(operands[-1])
            elif op == "Tm" and len(operands) >= 6:
                tm = lm = [float(v) for v in operands[-6:]]
            elif op in ("Td", "TD") and len(operands) >= 2:
                tx, ty = float(operands[-2]), float(operands[-1])
                if op == "TD":
                    leading = -ty
                tm = lm = mul([1, 0, 0, 1, tx, ty], lm)
            elif op == "T*":
                tm = lm = mul([1, 0, 0, 1, 0, -leading], lm)
            elif op in ("Tj", "'", '"') and operands and font is not None:
                if op != "Tj":
                    tm = lm = mul([1, 0, 0, 1, 0, -leading], lm)
                show(self._decode(operands[-1], font) if isinstance(operands[-1], bytes) else "")
            elif op == "TJ" and operands and isinstance(operands[-1], list) and font is not None:
                show("".join(self._decode(p, font) for p in operands[-1] if isinstance(p, bytes)))
            elif op == "Do" and operands:
                ref = xobjects.get(operands[-1])
                obj = self.resolve(ref) or {}
                if obj.get("/Subtype") == "/Image":
                    x0, y0 = ctm[4], ctm[5]
                    page.images.append(Placed(operands[-1], x0, y0, abs(ctm[0]) + abs(ctm[2]),
                                              abs(ctm[1]) + abs(ctm[3])))
                elif obj.get("/Subtype") == "/Form" and isinstance(ref, Ref):
                    inner = self.resolve(obj.get("/Resources")) or resources
                    matrix = [float(v) for v in obj.get("/Matrix", [1, 0, 0, 1, 0, 0])]
                    self._run(self.stream(ref.num), inner, page, mul(matrix, ctm))
            operands = []


def read_pages(path: str | Path) -> list[Page]:
    """The pages of a PDF: their text runs and placed images."""
    return Pdf(path).pages()
