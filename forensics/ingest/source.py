"""The file a load reads: taken literally, hashed and snapshotted in one read.

A path is resolved once (a symlink is followed and both names are kept) and refused when
it leads into the system's own folders or to something that is not a regular file. The
bytes are then read once: hashed, copied into the case's work folder under a name of
our own (so no reader ever sees a glob pattern or a ``~``), and, for text, counted in
lines with the position of every line too long for the line reader. UTF-16 and UTF-32
files (a byte-order mark) are decoded to UTF-8 on the way. What is loaded is therefore
exactly what was hashed, whatever happens to the original meanwhile.

>>> import tempfile
>>> tmp = Path(tempfile.mkdtemp())
>>> _ = (tmp / "glob*.jsonl").write_text('{"a": 1}\\n')
>>> snap = snapshot(resolve(tmp / "glob*.jsonl"), tmp / "work")
>>> snap.staged.name.endswith("glob_.jsonl"), snap.lines, snap.size
(True, 1, 9)
"""

from __future__ import annotations

import codecs
import hashlib
import re
import secrets
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from forensics.core.errors import FormatError, LoadError

SYSTEM_ROOTS = ("/etc", "/proc", "/sys", "/dev", "/private/etc")
CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BOMS = [(codecs.BOM_UTF32_LE, "utf-32-le", "utf-32"), (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16"), (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16")]


@dataclass(frozen=True)
class Source:
    """A file as named (``given``) and as found (``real``, symlinks resolved)."""

    given: Path
    real: Path

    @property
    def link(self) -> str | None:
        """The name given (absolute), when it was a symlink to another file."""
        given = self.given.absolute()
        return str(given) if given != self.real else None


@dataclass(frozen=True)
class Snapshot:
    """The bytes of one read: their sha256 and size, and the staged copy readers read."""

    source: Source
    staged: Path
    sha256: str
    size: int
    lines: int | None          # physical lines of the (decoded) text; None for binary
    long_lines: dict[int, int] = field(default_factory=dict)   # line number -> bytes
    encoding: str | None = None  # "utf-16-le" etc. when the file was decoded


def resolve(path: str | Path) -> Source:
    """The file behind ``path``, taken literally: no ``~``, no glob, no system files."""
    given = Path(path)
    if not given.exists() and not given.is_symlink():
        raise LoadError(f"{path}: no such file", hint="check the path")
    try:
        real = given.absolute().resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise LoadError(f"{path}: cannot resolve the path ({exc})",
                        hint="a symlink that points nowhere or loops") from exc
    text = str(real)
    if any(text == root or text.startswith(root + "/") for root in SYSTEM_ROOTS):
        via = f" (a symlink to {real})" if real != given.absolute() else ""
        raise LoadError(f"{path}: refusing to load a system file{via}",
                        hint="load evidence files, not files under "
                             + ", ".join(SYSTEM_ROOTS[:4]))
    mode = real.stat().st_mode
    if not stat.S_ISREG(mode):
        raise LoadError(f"{path}: not a regular file", hint="load a file, not a folder, "
                        "device or pipe")
    return Source(given, real)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "file"


class _Lines:
    """Counts lines over a stream of byte chunks, each at most ``limit`` bytes, and notes
    each line longer than ``limit`` bytes (its newline excluded), with O(1) Python work
    per chunk: a line that long spans chunks, so it ends at a chunk's first newline."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.newlines = 0
        self.fed = 0
        self.run = 0          # bytes since the last newline
        self.last = b""
        self.long: dict[int, int] = {}

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.fed += len(chunk)
        first = chunk.find(b"\n")
        if first < 0:
            self.run += len(chunk)
        else:
            if self.run + first > self.limit:
                self.long[self.newlines + 1] = self.run + first
            self.newlines += chunk.count(b"\n")
            self.run = len(chunk) - chunk.rfind(b"\n") - 1
        self.last = chunk[-1:]

    def total(self) -> int:
        if self.run > self.limit:
            self.long[self.newlines + 1] = self.run
        return self.newlines + (1 if self.fed and self.last != b"\n" else 0)


def snapshot(source: Source, folder: Path, max_line: int = 128 << 20) -> Snapshot:
    """Hash ``source`` and copy it into ``folder`` in the same read."""
    folder.mkdir(parents=True, exist_ok=True)
    name = source.real.name
    lower = name.lower()
    digest = hashlib.sha256()
    size = 0
    lines = _Lines(max_line)
    head = b""
    decoder: zlib._Decompress | None = None
    unzstd: zstandard.ZstdDecompressionObj | None = None
    text: codecs.IncrementalDecoder | None = None
    encoding = None
    staged = folder / f"{secrets.token_hex(4)}-{_safe_name(name)}"
    step = min(CHUNK, max_line)
    with source.real.open("rb") as src:
        first = src.read(step)
        head = first[:8]
        if lower.endswith(".gz"):
            if not first.startswith(GZIP_MAGIC):
                raise FormatError(f"{source.given}: named .gz but not gzip (it starts with "
                                  f"{head!r})", hint="rename the file to what it holds")
            decoder = zlib.decompressobj(wbits=31)
        elif lower.endswith(".zst"):
            if not first.startswith(ZSTD_MAGIC):
                raise FormatError(f"{source.given}: named .zst but not Zstandard (it "
                                  f"starts with {head!r})",
                                  hint="rename the file to what it holds")
            unzstd = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
        binary = first.startswith(b"PAR1")
        if not binary and decoder is None and unzstd is None:
            encoding, codec = _bom(first)
            if codec is not None:
                text = codecs.getincrementaldecoder(codec)(errors="strict")
                staged = staged.with_name(staged.name + ".utf8")
            elif _looks_wide(first):
                raise FormatError(f"{source.given}: the file holds NUL bytes between its "
                                  "characters: UTF-16 or UTF-32 without a byte-order mark",
                                  hint="convert it to UTF-8 (iconv -f UTF-16LE -t UTF-8)")
        with staged.open("wb") as out:
            chunk = first
            while chunk:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk if text is None else _decode(text, chunk, source, False))
                if decoder is not None:
                    decoder = _inflate(decoder, chunk, lines, source, step)
                elif unzstd is not None:
                    _unzstd(unzstd, chunk, lines, source, step)
                elif text is None and not binary:
                    lines.feed(chunk)
                chunk = src.read(step)
            if text is not None:
                out.write(_decode(text, b"", source, True))
    if text is not None:          # count the lines of the UTF-8 text the readers get
        with staged.open("rb") as fh:
            while chunk := fh.read(step):
                lines.feed(chunk)
    if decoder is not None and not decoder.eof and size:
        raise FormatError(f"{source.given}: truncated gzip (the stream ends early)",
                          hint="the file was cut short; copy it again")
    if binary:
        return Snapshot(source, staged, digest.hexdigest(), size, None, {}, None)
    total = lines.total()
    return Snapshot(source, staged, digest.hexdigest(), size, total, lines.long, encoding)


def _unzstd(decoder: zstandard.ZstdDecompressionObj, chunk: bytes, lines: _Lines,
            source: Source, step: int) -> None:
    """Feed a Zstandard chunk into the line counter, in pieces of at most ``step``."""
    try:
        out = decoder.decompress(chunk)
    except zstandard.ZstdError as exc:
        raise FormatError(f"{source.given}: not valid Zstandard ({exc})",
                          hint="the file is damaged or not Zstandard") from exc
    for i in range(0, len(out), step):
        lines.feed(out[i:i + step])


def _bom(first: bytes) -> tuple[str | None, str | None]:
    for bom, name, codec in BOMS:
        if first.startswith(bom):
            return name, codec
    return None, None


def _looks_wide(first: bytes) -> bool:
    """UTF-16/32 text without a BOM: NUL bytes in at least a quarter of the head."""
    sample = first[:4096]
    return len(sample) >= 8 and sample.count(0) * 4 >= len(sample)


def _decode(decoder: codecs.IncrementalDecoder, chunk: bytes, source: Source,
            final: bool) -> bytes:
    try:
        return decoder.decode(chunk, final).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{source.given}: not valid {exc.encoding} text "
                          f"({exc.reason})", hint="convert it to UTF-8") from exc


def _inflate(decoder: zlib._Decompress, chunk: bytes, lines: _Lines,
             source: Source, step: int) -> zlib._Decompress:
    """Feed a gzip chunk (members may follow one another) into the line counter."""
    data = chunk
    while data:
        try:
            out = decoder.decompress(data, step)
            lines.feed(out)
            while decoder.unconsumed_tail:
                lines.feed(decoder.decompress(decoder.unconsumed_tail, step))
        except zlib.error as exc:
            raise FormatError(f"{source.given}: not valid gzip ({exc})",
                              hint="the file is damaged or not gzip") from exc
        data = decoder.unused_data if decoder.eof else b""
        if data:
            if not data.startswith(GZIP_MAGIC):
                if data.strip(b"\x00"):
                    raise FormatError(f"{source.given}: bytes after the end of the gzip "
                                      "stream", hint="the file is damaged")
                return decoder
            decoder = zlib.decompressobj(wbits=31)
    return decoder


__all__ = ["Snapshot", "Source", "resolve", "snapshot"]
