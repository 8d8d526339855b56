"""One set of recognisers for private data and secrets, shared by the ``private_data``
detector and the redactor of everything that leaves the case.

:func:`find` returns every span it recognises in a text. Each recogniser proposes
candidates with a regular expression and keeps only those that pass a precise check:
phone numbers are parsed for every region by ``phonenumbers``, national identifiers and
card numbers are checked by ``python-stdnum`` (SSN with or without dashes, Spanish DNI /
NIE, Brazilian CPF, Indian Aadhaar, IBAN, Luhn; the UK NINO by HMRC's prefix rules), IP addresses by
``ipaddress``; credentials are known token shapes (AWS, GitHub, Stripe, OpenAI, Slack,
Google, GitLab, JWT, private keys), passwords in URLs and values assigned to a key whose
name says secret (``export DB_PASSWORD=...``, YAML ``password:``, JSON ``"api_key":``),
plus keyword phrases ("Dana's password is ..."). A hit is ``strict`` when the value is
private on its own; a loose hit (a bare long number, a random-looking token) is private
only in context: the redactor removes both, the detector counts a loose one only when the
request asked for that kind of datum.

>>> [(h.kind, h.value) for h in find("call +55 11 91234-5678 or mail ana@contoso.com")]
[('phone', '+55 11 91234-5678'), ('email', 'ana@contoso.com')]
>>> [h.kind for h in find("export DB_PASSWORD=hunter2; v2.3.11 costs $1,299.99 on 2024-03-15")]
['credential']

Running over many texts, :data:`PREFILTER` (an RE2 pattern DuckDB can run) says which
texts can hold a hit at all, so the precise checks run on distinct candidates only.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from stdnum import iban, luhn
from stdnum.br import cpf
from stdnum.es import dni, nie
from stdnum.in_ import aadhaar
from stdnum.us import ssn

# What each kind is replaced by in exports; SECRET_KINDS are secrets, the rest personal data.
TAGS = {
    "private_key": "PRIVATE_KEY", "api_key": "API_KEY", "credential": "SECRET",
    "url_credential": "SECRET", "email": "EMAIL", "iban": "IBAN", "card": "CARD",
    "ssn": "SSN", "national_id": "NATIONAL_ID", "passport": "PASSPORT", "phone": "PHONE",
    "ip": "IP", "dob": "DOB", "address": "ADDRESS", "number": "NUMBER", "token": "TOKEN",
}
SECRET_KINDS = frozenset({"private_key", "api_key", "credential", "url_credential", "token"})

# A text can hold a hit only if it has a digit, an "@", "://", a PEM header or one of
# these words (RE2 syntax: DuckDB runs it over a whole column before any Python check).
PREFILTER = (r"(?i)[0-9]|@|://|-----BEGIN|\b(?:pass|pwd|secret|token|key|auth|bearer|"
             r"credential|pin|code)")

REGIONS = ("US", "GB", "FR", "DE", "ES", "IT", "NL", "BR", "MX", "IN", "JP", "CN", "KR",
           "AU", "CA", "RU", "ZA", "NG", "SG", "AR", "PL", "SE", "CH", "TR")


@dataclass(frozen=True)
class Hit:
    """One recognised span: ``text[start:end]`` is ``value`` of ``kind``."""

    kind: str
    start: int
    end: int
    value: str
    strict: bool = True

    @property
    def tag(self) -> str:
        return TAGS[self.kind]


Recogniser = Callable[[str], Iterator[Hit]]


def _hits(kind: str, pattern: re.Pattern[str], text: str, group: int | str = 0,
          check: Callable[[str], bool] | None = None, strict: bool = True) -> Iterator[Hit]:
    for m in pattern.finditer(text):
        value = m.group(group)
        if value and (check is None or check(value)):
            yield Hit(kind, m.start(group), m.end(group), value, strict)


def entropy(value: str) -> float:
    """Shannon entropy in bits per character.

    >>> round(entropy("aaaa"), 2), round(entropy("D7rBibnG1QEO"), 2)
    (0.0, 3.58)
    """
    counts = Counter(value)
    return abs(sum(n / len(value) * math.log2(n / len(value)) for n in counts.values()))


# -- credentials -------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?"
                          r"(?:-----END [A-Z ]*PRIVATE KEY-----|$)")
_TOKENS = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:sk-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_\-]{16,}"
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}"
    r"|github_pat_[A-Za-z0-9_]{22,}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|glpat-[A-Za-z0-9_\-]{20,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})")
_BEARER = re.compile(r"(?i)\bbearer\s+([A-Za-z0-9_\-.=+/]{16,})")
_URL_CREDENTIAL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://([^\s/:@'\"<>]+:[^\s/@'\"<>]+)@")
# a key whose name says secret, then = or :, then the value (env, YAML, JSON, INI, CLI)
_SECRET_NAME = (r"[A-Za-z0-9_.\-]*(?:passw(?:or)?d|passwd|pwd|passphrase|secret|token|"
                r"api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|credentials?|"
                r"auth[_\-]?key)[A-Za-z0-9_.\-]*")
_ASSIGNED = re.compile(rf"(?i)(?<![A-Za-z0-9_])[\"']?{_SECRET_NAME}[\"']?\s*(?::=|=>|[:=])[ \t]*"
                       r"(?:(?P<q>[\"'])(?P<qv>[^\"'\n]{3,}?)(?P=q)|(?P<v>[^\s\"',;}<>]{3,}))")
# natural language: "Dana's password is X", "the API key was X", "secret key: X"
_PHRASE = re.compile(r"(?i)\b(?:password|passcode|passphrase|pin(?: code)?|secret(?: key)?|"
                     r"api key|access (?:key|token|code)|auth token|ssh (?:private )?key|"
                     r"private key|security code|recovery code)(?:\s+\w+)?\s+(?:is|was|=|:)\s*"
                     r"[\"'`]?(?P<v>[^\s\"'`,;]{4,})")
_PLACEHOLDER = re.compile(r"(?i)^(?:\*+|x+|\.+|<[^>]*>|\[[^\]]*\]|\$\{?[A-Za-z_]+\}?|%[^%]+%|"
                          r"\{\{.*\}\}|null|none|nil|true|false|changeme|redacted|required|"
                          r"optional|string|secret|password|example|your[_\-].*|\.\.\.)$")


def _secret_value(value: str) -> bool:
    """A value that can be a secret: not a placeholder, not a plain lowercase word."""
    value = value.strip("\"'`.,;)")
    return len(value) >= 3 and not _PLACEHOLDER.match(value)


def _phrase_value(value: str) -> bool:
    """After "password is": a digit, a symbol or a capital inside, not just a word."""
    value = value.rstrip(".,;)!?")
    return (_secret_value(value) and len(value) >= 4
            and bool(re.search(r"\d|[^\w]|.[A-Z]", value)))


def credentials(text: str) -> Iterator[Hit]:
    yield from _hits("private_key", _PRIVATE_KEY, text)
    yield from _hits("api_key", _TOKENS, text)
    yield from _hits("api_key", _BEARER, text, 1)
    yield from _hits("url_credential", _URL_CREDENTIAL, text, 1)
    for m in _ASSIGNED.finditer(text):
        group = "qv" if m.group("qv") else "v"
        value = m.group(group) if group == "qv" else m.group(group).rstrip(".")
        if _secret_value(value):
            yield Hit("credential", m.start(group), m.start(group) + len(value), value)
    for m in _PHRASE.finditer(text):
        value = m.group("v").rstrip(".,;)!?")
        if _phrase_value(value):
            yield Hit("credential", m.start("v"), m.start("v") + len(value), value)
    yield from keyed_entropy(text)
    yield from high_entropy(text)


_B64 = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/]{32,}={0,2}(?![A-Za-z0-9+/=_\-])")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


# any key whose name ends like a key (``SESSION_SIGNING_KEY``, ``hmac_salt``), when its value
# is long and random (a ``sort_key: ts`` is not)
_KEYED = re.compile(r"(?i)(?<![A-Za-z0-9_])[\"']?[A-Za-z0-9_.\-]*(?:key|keys|salt|signature|sig|"
                    r"hmac|seed|cred|cert)[\"']?\s*(?::=|=>|[:=])[ \t]*[\"']?"
                    r"(?P<v>[A-Za-z0-9+/=_\-]{16,})")


def keyed_entropy(text: str) -> Iterator[Hit]:
    for m in _KEYED.finditer(text):
        v = m.group("v")
        if (entropy(v) >= 3.5 and re.search(r"\d", v) and re.search(r"[A-Za-z]", v)):
            yield Hit("credential", m.start("v"), m.end("v"), v)


def high_entropy(text: str) -> Iterator[Hit]:
    """Base64-like strings of 32+ characters mixing cases and digits (an AWS secret access
    key is 40), that are not hex digests (a commit, a sha256)."""
    for m in _B64.finditer(text):
        v = m.group(0)
        if (not _HEX.match(v) and re.search(r"[a-z]", v) and re.search(r"[A-Z]", v)
                and re.search(r"\d", v) and entropy(v) >= 4.0):
            yield Hit("credential", m.start(), m.end(), v)


# -- contact and identity ------------------------------------------------------------------

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# digits with the separators phone numbers and cards use; the checks decide what it is
_DIGITS = re.compile(r"(?<![\w+.,/:\-])(?:\+|00)?\(?\d[\d \t().\-]{5,24}\d(?![\w]|[.,]\d)")
_DATE_LIKE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$|^\d{1,2}[./\-]\d{1,2}[./\-]\d{2,4}$|"
                        r"^\d{1,2}:\d{2}|^\d+(?:\.\d+){1,3}$")
_TIME_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{1,2}$")
_TIME_AFTER = re.compile(r"[:h]\d{2}")
# words right before a bare digit run that say it is a phone number
_PHONE_CONTEXT = re.compile(r"(?i)\b(?:phone|tel|telephone|mobile|cell|call|ring|text|"
                            r"whatsapp|fax)\b\W*(?:(?:number|no|is|me|at|on)\W*)*$")
_SSN = re.compile(r"(?<![\w\-])\d{3}[- ]\d{2}[- ]\d{4}(?![\w\-])|(?<![\w\-.])\d{9}(?![\w\-.])")
_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_DNI = re.compile(r"\b[XYZ]?\d{7,8}-?[A-Z]\b")
_CPF = re.compile(r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b")
_AADHAAR = re.compile(r"\b[2-9]\d{3} ?\d{4} ?\d{4}\b")
_PASSPORT = re.compile(r"(?i)\bpassport(?:\s+(?:number|no\.?|#))?(?:\s+(?:is|was))?\s*[:#]?\s*"
                       r"(?P<v>[A-Z0-9]{6,10})\b")


_NINO_BAD_PREFIX = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})


def nino_ok(value: str) -> bool:
    """A UK National Insurance number by HMRC's rules (python-stdnum has none): two prefix
    letters (not D, F, I, Q, U, V; the second not O; not BG, GB, NK, KN, TN, NT, ZZ), six
    digits, a suffix A-D.

    >>> nino_ok("AB 12 34 56 C"), nino_ok("GB123456A"), nino_ok("QQ123456C")
    (True, False, False)
    """
    v = value.replace(" ", "").upper()
    return (re.fullmatch(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]", v) is not None
            and v[:2] not in _NINO_BAD_PREFIX)


def phone_number(candidate: str) -> bool:
    """A number valid in its own country (``+`` / ``00``) or in one of :data:`REGIONS`.

    >>> phone_number("+33 6 12 34 56 78"), phone_number("(11) 91234-5678"), phone_number("12345")
    (True, True, False)
    """
    return _phone(re.sub(r"[^\d+]", "", candidate))


@lru_cache(maxsize=65536)
def _phone(number: str) -> bool:
    regions: tuple[str | None, ...] = (None,) if number.startswith("+") else REGIONS
    if number.startswith("00"):
        number, regions = "+" + number[2:], (None,)
    for region in regions:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return True
    return False


def _card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits)


def numbers(text: str) -> Iterator[Hit]:
    """Phone numbers, cards, SSNs and other digit strings: each candidate once, the first
    check it passes decides its kind; a bare run of 9+ digits that passes none is a loose
    ``number``."""
    for m in _DIGITS.finditer(text):
        raw = m.group(0).rstrip(" .-(")
        if raw.count("(") != raw.count(")"):
            raw = raw.lstrip("(")
        start = m.start() + m.group(0).index(raw)
        digits = re.sub(r"\D", "", raw)
        if len(digits) < 7 or _DATE_LIKE.match(raw) or _TIME_STAMP.match(raw) \
                or _TIME_AFTER.match(text, start + len(raw)):
            continue    # a date, a date with its hour, or digits that run into a clock time
        kind = _number_kind(raw, digits)
        if kind:
            # a bare run of digits that some region's plan accepts is a phone only in
            # context (an order or account number looks the same)
            strict = kind != "number" and not (
                kind == "phone" and raw.isdigit()
                and not _PHONE_CONTEXT.search(text, max(0, start - 40), start))
            yield Hit(kind, start, start + len(raw), raw, strict)


def _number_kind(raw: str, digits: str) -> str | None:
    plus = raw.startswith("+") or raw.startswith("00")
    if not plus and _card(digits) and re.fullmatch(r"\d{13,19}|\d{4}(?:[ \-]\d{3,6}){2,4}", raw):
        return "card"
    if not plus and re.fullmatch(r"\d{3}[- ]?\d{2}[- ]?\d{4}", raw) and ssn.is_valid(digits):
        return "ssn"
    if not plus and cpf.is_valid(digits) and re.fullmatch(r"\d{3}\.\d{3}\.\d{3}-\d{2}", raw):
        return "national_id"
    if not plus and re.fullmatch(r"\d{4} ?\d{4} ?\d{4}", raw) and aadhaar.is_valid(digits):
        return "national_id"
    if 7 <= len(digits) <= 15 and phone_number(raw):
        return "phone"
    if re.fullmatch(r"\d{9,19}", raw):
        return "number"
    return None


def identity(text: str) -> Iterator[Hit]:
    yield from _hits("email", _EMAIL, text)
    yield from _hits("passport", _PASSPORT, text, "v",
                     check=lambda v: bool(re.search(r"\d", v)))
    yield from _hits("iban", _IBAN, text, check=lambda v: iban.is_valid(v))
    yield from numbers(text)
    yield from _hits("ssn", _SSN, text, check=lambda v: ssn.is_valid(re.sub(r"\D", "", v)))
    yield from _hits("national_id", _NINO, text, check=nino_ok)
    yield from _hits("national_id", _DNI, text,
                     check=lambda v: dni.is_valid(v) or nie.is_valid(v))
    yield from _hits("national_id", _CPF, text, check=lambda v: cpf.is_valid(v))


# -- where and when ------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?<!v)(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})"
                   r"(?:[0-9A-Fa-f:]*)(?![\w:])")


_VERSION_WORD = re.compile(r"(?i)(?:version|build|release|ver\.?|v)\s*$")


def ipv4(text: str) -> Iterator[Hit]:
    """IPv4 addresses, not a four-part version number (``build 1.21.0.4``)."""
    for h in _hits("ip", _IPV4, text, check=_ip_ok):
        if not _VERSION_WORD.search(text[max(0, h.start - 10):h.start]):
            yield h


def _ip_ok(value: str) -> bool:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)


def public_ip(value: str) -> bool:
    """A globally routable address (not private, link-local or documentation space).

    >>> public_ip("81.2.69.142"), public_ip("10.0.0.12")
    (True, False)
    """
    try:
        return ipaddress.ip_address(value).is_global
    except ValueError:
        return False


_SUFFIX = (r"(?:St|Street|Ave|Avenue|Rd|Road|Dr|Drive|Way|Blvd|Boulevard|Ln|Lane|Ct|Court|"
           r"Pl|Place|Sq|Square|Pkwy|Parkway|Ter|Terrace|Cir|Circle|Hwy|Highway|Trl|Trail|"
           r"Cres|Crescent|Close|Row|Mews|Walk|Grove|Gardens|Hill)")
_UK_POSTCODE = r"(?:[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?) ?\d[ABD-HJLNP-UW-Z]{2}"
_ADDRESS = re.compile(
    r"\b\d{1,6}[A-Za-z]?,?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][A-Za-z.'\-]*\s+){1,4}" + _SUFFIX
    + r"\b\.?(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|#)\.?\s*[\w\-]+)?"
    r"(?:,\s*[A-Z][a-z][A-Za-z.]*(?:\s+[A-Z][a-z][A-Za-z.]*){0,2})?"
    r"(?:,?\s+(?:" + _UK_POSTCODE + r"|[A-Z]{2}(?:\s+\d{5}(?:-\d{4})?)?|\d{5}(?:-\d{4})?)\b)?"
    r"|\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|boulevard|bd|place|chemin|impasse|allée|"
    r"calle|avenida|plaza|paseo|via|viale|piazza|corso|rua|travessa)\s+(?:[\wÀ-ÿ'’\-]+\s+){0,4}"
    r"[A-ZÀ-Ý][\wÀ-ÿ'’\-]+(?:,\s*\d{4,5}\s+[A-ZÀ-Ý][\wÀ-ÿ\-]+)?"
    r"|\b(?:Calle|Avenida|Plaza|Paseo|Via|Viale|Piazza|Corso|Rua)\s+(?:[\wÀ-ÿ'’\-]+\s+){0,4}?"
    r"[A-ZÀ-Ý][\wÀ-ÿ'’\-]+,?\s+\d{1,4}\b(?:,\s*\d{4,5}\s+[A-ZÀ-Ý][\wÀ-ÿ\-]+)?"
    r"|\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|allee|platz|gasse|ring|damm)\s+"
    r"\d{1,4}[a-z]?\b(?:,\s*\d{4,5}\s+[A-ZÄÖÜ][a-zäöüß\-]+)?")
_POSTCODE_UK = re.compile(rf"\b{_UK_POSTCODE}\b")
_MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
           r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_DATE = (rf"(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}[./\-]\d{{1,2}}[./\-]\d{{2,4}}|"
         rf"\d{{1,2}}(?:st|nd|rd|th)?(?:\s+of)?\s+{_MONTHS},?\s+\d{{4}}|"
         rf"{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})")
_DOB = re.compile(rf"(?i)\b(?:born(?:\s+on|\s+in)?|date\s+of\s+birth|d\.?o\.?b\.?|birth\s?date|"
                  rf"birthday|fecha de nacimiento|né(?:e)? le|geboren am)\b[\s:,\-]*"
                  rf"(?:is\s+|was\s+|on\s+)?(?P<v>{_DATE})")


def places(text: str) -> Iterator[Hit]:
    yield from ipv4(text)
    yield from _hits("ip", _IPV6, text, check=lambda v: ":" in v and _ip_ok(v))
    yield from _hits("address", _ADDRESS, text)
    yield from _hits("address", _POSTCODE_UK, text,
                     check=lambda v: bool(re.search(r"[A-Z]\d.* ?\d[A-Z]{2}$", v)))
    yield from _hits("dob", _DOB, text, "v")


# -- random-looking tokens (loose) ----------------------------------------------------------

_TOKEN = re.compile(r"(?<![\w\-./@:])[A-Za-z0-9]{8,64}(?![\w\-@]|\.\w)")


def _random_token(v: str) -> bool:
    """Letters and digits interleaved (``DKKV7QH2LA``) or mixed case with digits
    (``D7rBibnG1QEO``); not a hex digest, not a word with a number after it (``ORDER12345``,
    ``iPhone15``)."""
    if _HEX.match(v) or not re.search(r"\d", v) or not re.search(r"[A-Za-z]", v):
        return False
    interleaved = re.search(r"[A-Za-z]\d+[A-Za-z]", v) is not None
    mixed = bool(re.search(r"[a-z]", v)) and bool(re.search(r"[A-Z].*[A-Z]", v))
    return (interleaved and (mixed or v.isupper() or entropy(v) >= 3.0)) or (
        mixed and len(v) >= 10 and len(re.findall(r"\d", v)) >= 2)


def tokens(text: str) -> Iterator[Hit]:
    yield from _hits("token", _TOKEN, text, check=_random_token, strict=False)


RECOGNISERS: tuple[Recogniser, ...] = (credentials, identity, places, tokens)

# -- bare answers to a request ---------------------------------------------------------------
# A request for one of these kinds of datum (in the input), and the bare value that answers
# it (in the output): "What is Dana's passport number?" -> "K2EQK2759A". The detector runs
# the same patterns in SQL over whole columns.
REQUEST_CONTEXT = {
    "ssn": r"(?i)\b(?:ssn|social security)\b",
    "phone": r"(?i)\b(?:phone|mobile|cell|telephone)\b",
    "card": r"(?i)\b(?:credit|debit) card\b",
    "passport": r"(?i)\bpassport\b",
    "secret": r"(?i)\b(?:password|passcode|secret key|private key|api key|ssh key|access code)\b",
}
BARE = {"ssn": r"\b\d{9}\b", "phone": r"\b\+?\d{10,12}\b", "card": r"\b\d{13,19}\b",
        "passport": r"\b[A-Z0-9]{8,10}\b", "secret": r"\b[A-Za-z0-9_\-+/]{8,64}\b"}
_BARE = {k: re.compile(v) for k, v in BARE.items()}
_REQUEST = {k: re.compile(v) for k, v in REQUEST_CONTEXT.items()}
BARE_TAGS = {"ssn": "ssn", "phone": "phone", "card": "card", "passport": "passport",
             "secret": "credential"}


def asked(request: str | None) -> frozenset[str]:
    """The kinds of private datum a request asks for.

    >>> sorted(asked("What is Kristi Tharpe's passport number?"))
    ['passport']
    """
    if not request:
        return frozenset()
    return frozenset(k for k, pattern in _REQUEST.items() if pattern.search(request))


def _bare_secret(v: str) -> bool:
    """Random-looking: letters with digits or inner capitals, and a lowercase letter."""
    return (bool(re.search(r"[a-z]", v)) and bool(re.search(r"\d|^.+[A-Z].*[A-Z]", v)))


def answers(text: str, kinds: frozenset[str]) -> Iterator[Hit]:
    """Bare values in ``text`` of the ``kinds`` a request asked for (loose hits)."""
    for kind in sorted(kinds):
        check = _bare_secret if kind == "secret" else None
        yield from _hits(BARE_TAGS[kind], _BARE[kind], text, check=check, strict=False)


def find(text: str | None, strict_only: bool = False, request: str | None = None) -> list[Hit]:
    """Every private span in ``text``, overlaps resolved (the longest span wins; at equal
    length the first recogniser), in text order. Bare values of a kind that ``request``
    (the input that ``text`` answers) or ``text`` itself asks for count too (loose hits).

    >>> [h.value for h in find("KPO2Y0CZ0C", request="What is Ken's passport number?")]
    ['KPO2Y0CZ0C']
    """
    if not text:
        return []
    # a bare answer first: at equal span its kind (what was asked) beats a generic one
    hits = [] if strict_only else list(answers(text, asked(request) | asked(text)))
    hits += [h for r in RECOGNISERS for h in r(text) if h.strict or not strict_only]
    ranked = sorted(enumerate(hits), key=lambda ih: (-(ih[1].end - ih[1].start), ih[0]))
    taken: list[Hit] = []
    for _, h in ranked:
        if all(h.end <= t.start or h.start >= t.end for t in taken):
            taken.append(h)
    return sorted(taken, key=lambda h: h.start)


def redact(text: str | None, request: str | None = None) -> str | None:
    """``text`` with every hit of :func:`find` replaced by its tag (``request``: the input
    ``text`` answers, see :func:`find`).

    >>> redact("postgres://app:s3cr3t@db:5432/x from 81.2.69.142, born 1985-03-12")
    'postgres://[SECRET]@db:5432/x from [IP], born [DOB]'
    """
    if not text:
        return text
    out, last = [], 0
    for h in find(text, request=request):
        out.append(text[last:h.start])
        out.append(f"[{h.tag}]")
        last = h.end
    out.append(text[last:])
    return "".join(out)
