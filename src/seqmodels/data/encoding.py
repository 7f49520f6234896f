"""The one rule for reading a user's text, in training and in predict: UTF-8 unless the user names
another encoding, a byte order mark dropped, and a byte that does not decode refused with its file,
line and byte, never a silent guess at a whole file's encoding.

`data.encoding` (predict: `--encoding`) names the encoding; `data.encoding_errors=replace`
(`--encoding-errors replace`) is the explicit request to read on anyway, every undecodable byte
becoming U+FFFD, counted in a warning.
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass

from seqmodels.errors import DataError

log = logging.getLogger("seqmodels")

ERROR_MODES = ("strict", "replace")


@dataclass(frozen=True)
class TextEncoding:
    """How a user's bytes become text. `option` and `errors_option` name the keys (or flags) that set
    them, so that a refusal tells the user what to change."""

    encoding: str = "utf-8"
    errors: str = "strict"
    option: str = "data.encoding"
    errors_option: str = "data.encoding_errors"

    def __post_init__(self) -> None:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise DataError(
                f"{self.option}={self.encoding} is not an encoding Python knows; use e.g. utf-8, latin-1, cp1252"
            ) from None
        if self.errors not in ERROR_MODES:
            raise DataError(f"{self.errors_option}={self.errors}: use one of {list(ERROR_MODES)}")

    @property
    def name(self) -> str:
        return codecs.lookup(self.encoding).name

    def decode(self, raw: bytes, source: str) -> str:
        """`raw` as text; `source` names the file (or member) in errors and warnings."""
        name = self.name
        if name in ("utf-8", "utf-8-sig") and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
            name = "utf-8"
        try:
            return raw.decode(name)
        except UnicodeDecodeError as error:
            if self.errors == "strict":
                line = raw.count(b"\n", 0, error.start) + 1
                column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
                raise DataError(
                    f"{source}:{line}: byte {column} (0x{raw[error.start]:02x}) is not {self.encoding}; "
                    f"name the file's encoding with {self.option}=ENCODING (e.g. latin-1), convert the file "
                    f"(iconv -f ENCODING -t utf-8), or read on with {self.errors_option}=replace"
                ) from None
        text = raw.decode(name, errors="replace")
        replaced = text.count("\ufffd") - raw.decode(name, errors="ignore").count("\ufffd")
        log.warning(
            "%s: %d byte(s) are not %s and were replaced by U+FFFD (%s=replace)",
            source,
            replaced,
            self.encoding,
            self.errors_option,
        )
        return text


UTF8 = TextEncoding()


def read_text(path, encoding: TextEncoding = UTF8) -> str:
    """A whole file as text under `encoding`'s rule (a missing or unreadable file: one DataError line)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise DataError(f"cannot read {path} ({error.strerror})") from None
    return encoding.decode(raw, str(path))


def split_lines(text: str) -> list[str]:
    """Lines without their endings (\\n or \\r\\n); a final newline ends the last line, it opens none."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]
