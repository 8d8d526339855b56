"""Text pools for the drill generator: prompts and outputs that read like real traffic.

Each pool is a small Polars DataFrame (input_text, output_text, retrievals, ...) built once
per drill; events pick rows from it by index, so generation stays vectorised.

>>> pools = build_pools(np.random.default_rng(0))
>>> sorted(pools)[:2]
[('agent', 'any', 'error'), ('agent', 'any', 'normal')]
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl

LANGS = ("en", "de", "fr", "es", "ja")
RETRIEVAL_TYPE = pl.List(pl.Struct({"rank": pl.Int32, "doc_id": pl.String, "score": pl.Float64,
                                    "content": pl.String}))

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DEVICES = ["my iPhone", "the Android app", "my Windows laptop", "my MacBook", "the web app"]
NAMES = ["Maria Keller", "James O'Connor", "Aiko Tanaka", "Lucas Moreau", "Sofia Garcia",
         "Daniel Schmidt", "Priya Raman", "Tom Becker", "Chloe Martin", "Ethan Brooks"]
VENDORS = ["Müller Logistik GmbH", "Northwind Traders", "Acme Office Supply", "Blue Harbor Ltd",
           "Schneider & Söhne KG", "Contoso Catering", "Fabrikam Print", "Delta Freight SA"]

# support_chat: (topic, sensitive?) -> {lang: (question, answer)}; {n}/{m}/{d} are slots.
SUPPORT: list[tuple[str, bool, dict[str, tuple[str, str]]]] = [
    ("password", False, {
        "en": ("How do I reset my password? I can't log in on {d}.",
               "To reset your password, open Settings > Security and choose \"Reset password\". "
               "We'll email you a link that stays valid for 30 minutes. If the email doesn't "
               "arrive, check your spam folder or request a new link."),
        "de": ("Wie setze ich mein Passwort zurück? Ich komme auf {d} nicht mehr rein.",
               "Öffne Einstellungen > Sicherheit und wähle \"Passwort zurücksetzen\". Du "
               "bekommst eine E-Mail mit einem Link, der 30 Minuten gültig ist."),
        "fr": ("Comment réinitialiser mon mot de passe ? Je n'arrive plus à me connecter.",
               "Ouvrez Paramètres > Sécurité et choisissez « Réinitialiser le mot de passe ». "
               "Vous recevrez un e-mail avec un lien valable 30 minutes."),
        "es": ("¿Cómo restablezco mi contraseña? No puedo iniciar sesión.",
               "Abre Ajustes > Seguridad y elige «Restablecer contraseña». Te enviaremos un "
               "correo con un enlace válido durante 30 minutos."),
        "ja": ("パスワードをリセットするにはどうすればいいですか？ログインできません。",
               "設定 > セキュリティを開き、「パスワードをリセット」を選択してください。"
               "30分間有効なリンクをメールでお送りします。"),
    }),
    ("double_charge", True, {
        "en": ("Why was I charged twice for {m}? I see two payments of ${n}.",
               "I'm sorry about the double charge. One of the two ${n} payments is a "
               "pre-authorisation that your bank will release within 3-5 business days. If "
               "it's still there after that, reply here and we'll refund it."),
        "de": ("Warum wurde ich im {m} zweimal belastet? Ich sehe zwei Zahlungen über {n} €.",
               "Entschuldige die doppelte Belastung. Eine der beiden Zahlungen über {n} € ist "
               "eine Vorautorisierung, die deine Bank in 3-5 Werktagen freigibt."),
        "fr": ("Pourquoi ai-je été débité deux fois en {m} ? Je vois deux paiements de {n} €.",
               "Désolé pour ce double débit. L'un des deux paiements de {n} € est une "
               "pré-autorisation que votre banque libérera sous 3 à 5 jours ouvrés."),
        "es": ("¿Por qué me cobraron dos veces en {m}? Veo dos pagos de {n} €.",
               "Lamento el cobro doble. Uno de los dos pagos de {n} € es una preautorización "
               "que tu banco liberará en 3-5 días hábiles."),
        "ja": ("{m}に二重に請求されました。{n}ドルの支払いが2件あります。",
               "二重請求についてお詫びします。2件のうち1件は仮売上で、3〜5営業日以内に"
               "銀行によって解除されます。"),
    }),
    ("billing_date", True, {
        "en": ("Can I move my billing date to the {n}th of each month?",
               "Yes. Go to Billing > Payment schedule and pick a new billing day. The next "
               "invoice will be prorated for the days in between."),
        "de": ("Kann ich mein Abrechnungsdatum auf den {n}. jedes Monats verschieben?",
               "Ja. Unter Abrechnung > Zahlungsplan kannst du einen neuen Abrechnungstag "
               "wählen. Die nächste Rechnung wird anteilig berechnet."),
        "fr": ("Puis-je déplacer ma date de facturation au {n} de chaque mois ?",
               "Oui. Dans Facturation > Échéancier, choisissez un nouveau jour. La prochaine "
               "facture sera calculée au prorata."),
        "es": ("¿Puedo cambiar mi fecha de facturación al día {n} de cada mes?",
               "Sí. En Facturación > Calendario de pagos elige un nuevo día. La próxima "
               "factura se prorrateará."),
    }),
    ("export", False, {
        "en": ("How do I export all my notes to PDF from {d}?",
               "Select the notes you want, then use File > Export > PDF. For a whole "
               "notebook, right-click it and choose \"Export notebook\". Large exports are "
               "emailed to you as a zip file."),
        "de": ("Wie exportiere ich alle meine Notizen als PDF?",
               "Markiere die Notizen und wähle Datei > Exportieren > PDF. Für ein ganzes "
               "Notizbuch klicke es mit rechts an und wähle \"Notizbuch exportieren\"."),
        "ja": ("すべてのノートをPDFにエクスポートする方法は？",
               "ノートを選択し、ファイル > エクスポート > PDF を選んでください。"),
    }),
    ("teammate", False, {
        "en": ("How can I add a teammate to my workspace? They should only see one project.",
               "Open Workspace > Members, click \"Invite\", enter their email and choose the "
               "\"Guest\" role, then share only the project they need. Guests don't count "
               "toward your seat limit."),
        "fr": ("Comment ajouter un collègue à mon espace de travail ?",
               "Ouvrez Espace de travail > Membres, cliquez sur « Inviter » et saisissez son "
               "adresse e-mail."),
        "es": ("¿Cómo agrego a un compañero a mi espacio de trabajo?",
               "Abre Espacio de trabajo > Miembros, pulsa «Invitar» e introduce su correo."),
    }),
    ("plan_difference", True, {
        "en": ("What's the difference between the Pro and Team plans? Is it worth ${n} more?",
               "Pro is for one person: unlimited notes, offline mode and version history. "
               "Team adds shared workspaces, admin controls and SSO. If you collaborate with "
               "two or more people, Team usually pays off."),
        "de": ("Was ist der Unterschied zwischen Pro und Team? Lohnt sich der Aufpreis?",
               "Pro ist für eine Person: unbegrenzte Notizen, Offline-Modus und "
               "Versionsverlauf. Team bietet zusätzlich geteilte Arbeitsbereiche und SSO."),
    }),
    ("sync", False, {
        "en": ("My sync has been stuck on {d} since this morning. What should I do?",
               "Please sign out and back in on {d}, then check Settings > Sync status. If "
               "it still shows \"Pending\", clear the local cache from the same screen; your "
               "notes are safe on the server."),
        "de": ("Die Synchronisierung hängt seit heute Morgen. Was kann ich tun?",
               "Melde dich ab und wieder an und prüfe Einstellungen > Sync-Status. Hilft das "
               "nicht, leere den lokalen Cache; deine Notizen sind auf dem Server sicher."),
        "es": ("La sincronización está atascada desde esta mañana. ¿Qué hago?",
               "Cierra sesión y vuelve a entrar, luego revisa Ajustes > Estado de "
               "sincronización."),
    }),
    ("cancel", True, {
        "en": ("Can you help me cancel my subscription before the renewal on the {n}th?",
               "Sure. Go to Billing > Subscription and click \"Cancel plan\". You keep access "
               "until the end of the paid period and won't be charged on the {n}th."),
        "de": ("Kannst du mir helfen, mein Abo vor der Verlängerung zu kündigen?",
               "Klar. Unter Abrechnung > Abonnement auf \"Plan kündigen\" klicken. Du behältst "
               "den Zugang bis zum Ende des bezahlten Zeitraums."),
        "fr": ("Pouvez-vous m'aider à résilier mon abonnement avant le renouvellement ?",
               "Bien sûr. Allez dans Facturation > Abonnement et cliquez sur « Résilier »."),
    }),
]

REFUSALS = {
    "en": ["I'm sorry, but I can't help with that request.",
           "I'm unable to assist with billing or account questions. Please contact our "
           "support team directly.",
           "I apologize, but I cannot provide information about payments or subscriptions.",
           "Sorry, I can't discuss that. Is there anything else I can help you with?",
           "As an AI assistant, I'm not able to help with requests involving financial "
           "details."],
    "de": ["Es tut mir leid, aber dabei kann ich nicht helfen.",
           "Zu Abrechnungs- oder Kontofragen kann ich leider keine Auskunft geben."],
    "fr": ["Je suis désolé, mais je ne peux pas vous aider avec cette demande.",
           "Je ne peux pas répondre aux questions de facturation."],
    "es": ["Lo siento, pero no puedo ayudarte con esa solicitud.",
           "No puedo responder preguntas sobre facturación o pagos."],
    "ja": ["申し訳ありませんが、そのご依頼にはお応えできません。"],
}

TRUNCATED_TAILS = [" and then you can", " which means the", ", because the", " so that your",
                   " including the"]
ERRORS = [("error", "Request timed out after 30000 ms", "timeout"),
          ("error", "429 Too Many Requests: rate limit exceeded for model", "rate_limit"),
          ("error", "502 Bad Gateway from upstream provider", "upstream"),
          ("error", "context_length_exceeded: maximum context length is 128000 tokens",
           "context_length")]

# doc_qa: policy documents in a shared handbook, plus other tenants' HR directory.
POLICIES = [
    ("parental-leave", "What is our parental leave policy?",
     "Employees are entitled to 16 weeks of fully paid parental leave, which can be taken "
     "within the first 12 months after birth or adoption.",
     "You get 16 weeks of fully paid parental leave, to be taken within 12 months of the "
     "birth or adoption."),
    ("vacation", "How many vacation days do new employees get in their first year?",
     "New employees accrue 25 vacation days per calendar year, prorated from the start date. "
     "Up to 5 unused days carry over to March 31 of the following year.",
     "New employees get 25 vacation days a year, prorated from the start date; up to 5 "
     "unused days carry over until March 31."),
    ("expenses", "What's the expense limit for a client dinner?",
     "Client entertainment is reimbursed up to 90 EUR per attendee including tax and tip. "
     "Receipts must be submitted within 30 days.",
     "Client dinners are covered up to 90 EUR per attendee including tax and tip; submit the "
     "receipts within 30 days."),
    ("purchase-orders", "Who has to approve purchase orders above 5,000 EUR?",
     "Purchase orders above 5,000 EUR require approval by the department head and the finance "
     "controller. Above 50,000 EUR the CFO must also sign.",
     "Above 5,000 EUR both the department head and the finance controller approve; above "
     "50,000 EUR the CFO signs as well."),
    ("remote-work", "Can I work remotely from another country for a few weeks?",
     "Remote work from abroad is allowed for up to 20 working days per year within the EU, "
     "with manager approval and notice to HR at least two weeks in advance.",
     "Yes, up to 20 working days a year within the EU, with your manager's approval and two "
     "weeks' notice to HR."),
    ("travel-class", "Which class can I book for a 5-hour flight?",
     "Economy class applies to flights under 6 hours. Premium economy may be booked for "
     "flights of 6 hours or longer.",
     "For a 5-hour flight you book economy; premium economy is allowed from 6 hours."),
    ("laptop-refresh", "When am I eligible for a new laptop?",
     "Laptops are refreshed every 36 months, or earlier when IT confirms a hardware defect.",
     "Every 36 months, or earlier if IT confirms a hardware defect."),
    ("sick-leave", "Do I need a doctor's note when I'm sick for two days?",
     "A doctor's certificate is required from the third consecutive day of sick leave.",
     "No, a doctor's note is only needed from the third consecutive sick day."),
]
HALLUCINATED = [
    "You get 24 weeks of paid parental leave plus a 2,000 EUR baby bonus.",
    "New employees get 30 vacation days and unlimited carry-over.",
    "There is no limit for client dinners as long as a director attends.",
    "Purchase orders of any size only need your team lead's approval.",
    "Remote work from abroad is allowed for up to 90 days a year anywhere in the world.",
]

# report_json: invoices to extract.
INVOICE = {
    "en": "Invoice #{no} from {vendor}, dated {date}. Total due: {total} {cur}. Payment terms: "
          "net {terms} days.",
    "de": "Rechnung Nr. {no} von {vendor}, Datum {date}. Gesamtbetrag: {total} {cur}. "
          "Zahlungsziel: {terms} Tage netto.",
    "fr": "Facture n° {no} de {vendor}, datée du {date}. Montant total : {total} {cur}. "
          "Conditions : {terms} jours net.",
    "es": "Factura n.º {no} de {vendor}, con fecha {date}. Total a pagar: {total} {cur}. "
          "Plazo: {terms} días netos.",
    "ja": "請求書番号 {no}、発行元 {vendor}、日付 {date}。"
          "合計金額：{total} {cur}。支払条件：{terms}日。",
}
EXTRACT_PROMPT = "Extract invoice_number, vendor, date, total, currency and terms_days as JSON."

# agent: order requests and the tools the agent calls for them.
AGENT = [
    ("track", "Where is my package for order {order}? It was supposed to arrive yesterday.",
     "track_shipment", "Your order {order} is in transit with DHL and is now expected to "
                       "arrive tomorrow before 18:00.", False),
    ("refund", "I want a refund for order {order}, the blender arrived broken.",
     "create_return", "I've opened a return for order {order}. A prepaid label is on its way "
                      "to your email; the refund is issued once the item is scanned.", True),
    ("cancel", "Please cancel order {order}, I ordered the wrong size.",
     "cancel_order", "Order {order} has been cancelled. You will not be charged.", False),
    ("address", "Can you change the delivery address of order {order} to my office?",
     "update_address", "Done: order {order} will now be delivered to your office address.",
     False),
    ("invoice", "Send me the invoice for order {order} please.",
     "send_invoice", "I've emailed you the invoice for order {order}.", False),
    ("refund_big", "The TV from order {order} has a cracked screen. Refund me the full {n} "
                   "EUR now.",
     "create_return", "I'm sorry about the screen. I've opened a return for order {order}; a "
                      "specialist will review the refund of {n} EUR within 24 hours.", True),
]
ALLOWED_TOOLS = ["track_shipment", "create_return", "cancel_order", "update_address",
                 "send_invoice", "lookup_order"]


def _slots(rng: np.random.Generator) -> dict[str, Any]:
    return {"n": int(rng.integers(2, 28)), "m": MONTHS[int(rng.integers(0, 12))],
            "d": DEVICES[int(rng.integers(0, len(DEVICES)))]}


def _fill(text: str, rng: np.random.Generator, slots: dict[str, Any] | None = None) -> str:
    return text.format(**(slots or _slots(rng)))


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    cols = ["input_text", "output_text", "finish_reason", "status", "error", "topic",
            "retrievals", "tool_name", "tool_args", "tool_output", "policy_decision"]
    data = {c: [r.get(c) for r in rows] for c in cols}
    schema = {c: pl.String for c in cols} | {"retrievals": RETRIEVAL_TYPE}
    return pl.DataFrame(data, schema=schema)


def _truncate(text: str, rng: np.random.Generator) -> str:
    cut = max(20, int(len(text) * rng.uniform(0.35, 0.7)))
    return text[:cut].rstrip() + TRUNCATED_TAILS[int(rng.integers(0, len(TRUNCATED_TAILS)))]


def _base_variants(kind: str, lang: str, pairs: list[tuple[str, str, str]],
                   rng: np.random.Generator) -> list[dict[str, Any]]:
    """Background outcomes shared by the chat-like features."""
    rows: list[dict[str, Any]] = []
    for topic, q, a in pairs:
        row: dict[str, Any] = {"input_text": q, "topic": topic, "finish_reason": "stop",
                               "status": "ok"}
        if kind == "normal":
            row["output_text"] = a
        elif kind == "refusal":
            opts = REFUSALS.get(lang, REFUSALS["en"])
            row["output_text"] = opts[int(rng.integers(0, len(opts)))]
        elif kind == "truncated":
            row |= {"output_text": _truncate(a, rng), "finish_reason": "length"}
        elif kind == "empty":
            row |= {"output_text": "", "finish_reason": "stop"}
        elif kind == "error":
            status, err, _ = ERRORS[int(rng.integers(0, len(ERRORS)))]
            row |= {"output_text": None, "status": status, "error": err, "finish_reason": None}
        elif kind == "wrong_language":
            other = "en" if lang != "en" else ("de", "es", "fr")[int(rng.integers(0, 3))]
            row["output_text"] = _translate(topic, other, a)
        rows.append(row)
    return rows


_TRANSLATIONS: dict[tuple[str, str], str] = {}


def _translate(topic: str, lang: str, fallback: str) -> str:
    return _TRANSLATIONS.get((topic, lang), fallback)


def _support_pairs(lang: str, rng: np.random.Generator, k: int) -> list[tuple[str, str, str]]:
    pairs = []
    topics = [t for t in SUPPORT if lang in t[2]] or [t for t in SUPPORT if "en" in t[2]]
    for _ in range(k):
        topic, _sensitive, by_lang = topics[int(rng.integers(0, len(topics)))]
        q, a = by_lang.get(lang, by_lang["en"])
        slots = _slots(rng)
        pairs.append((topic, _fill(q, rng, slots), _fill(a, rng, slots)))
    return pairs


def sensitive_topics() -> list[str]:
    """support_chat topics about billing and accounts (where over-refusal bites)."""
    return [t for t, sensitive, _ in SUPPORT if sensitive]


def _docs(topic_idx: int, index: str, rng: np.random.Generator,
          leak: str | None = None) -> list[dict[str, Any]]:
    """Retrieved chunks for a policy question from retrieval index ``index``."""
    chunk = "c" if index == "new" else "p"
    slug, _q, content, _a = POLICIES[topic_idx]
    others = [p for i, p in enumerate(POLICIES) if i != topic_idx]
    picks = [others[int(i)] for i in rng.choice(len(others), size=2, replace=False)]
    docs = [{"doc_id": f"handbook/{slug}#{chunk}1", "content": content}]
    docs += [{"doc_id": f"handbook/{p[0]}#{chunk}{int(rng.integers(1, 4))}", "content": p[2]}
             for p in picks]
    if leak is not None:
        doc_id = f"hr-directory/{leak}#{chunk}{int(rng.integers(1, 9))}"
        docs.insert(int(rng.integers(0, 2)), {"doc_id": doc_id, "content": leak_doc(rng)})
    scores = np.sort(rng.uniform(0.55, 0.93, size=len(docs)))[::-1]
    return [{"rank": i + 1, "score": round(float(s), 4), **d} for i, (d, s) in
            enumerate(zip(docs, scores, strict=True))]


def _person(rng: np.random.Generator) -> tuple[str, str, str]:
    name = NAMES[int(rng.integers(0, len(NAMES)))]
    first, last = name.lower().replace("'", "").split(" ", 1)
    email = f"{first}.{last.replace(' ', '')}@contoso-hr.example.com"
    phone = f"+49 30 {int(rng.integers(2000, 9999))} {int(rng.integers(1000, 9999))}"
    return name, email, phone


def leak_doc(rng: np.random.Generator) -> str:
    name, email, phone = _person(rng)
    return (f"Employee directory (Contoso HR, confidential). {name}, Senior Accountant. "
            f"Email: {email}. Phone: {phone}. Salary band L5. Emergency contact on file.")


def _doc_rows(kind: str, index: str, rng: np.random.Generator, k: int,
              leak_tenant: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for _ in range(k):
        t = int(rng.integers(0, len(POLICIES)))
        slug, q, _content, answer = POLICIES[t]
        row: dict[str, Any] = {"input_text": q, "topic": slug, "finish_reason": "stop",
                               "status": "ok", "output_text": answer}
        if kind == "leak":
            row["retrievals"] = _docs(t, index, rng, leak=leak_tenant or "contoso")
            name, email, phone = _person(rng)
            row["output_text"] = (f"{answer} For details you can contact {name} in HR at "
                                  f"{email} or {phone}.")
        else:
            row["retrievals"] = _docs(t, index, rng)
        if kind == "hallucination":
            row["output_text"] = HALLUCINATED[int(rng.integers(0, len(HALLUCINATED)))]
        elif kind == "refusal":
            row["output_text"] = REFUSALS["en"][int(rng.integers(0, len(REFUSALS["en"])))]
        elif kind == "truncated":
            row |= {"output_text": _truncate(answer, rng), "finish_reason": "length"}
        elif kind == "error":
            status, err, _ = ERRORS[int(rng.integers(0, len(ERRORS)))]
            row |= {"output_text": None, "status": status, "error": err, "finish_reason": None}
        rows.append(row)
    return rows


def _invoice_rows(kind: str, lang: str, rng: np.random.Generator, k: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(k):
        no = f"INV-{int(rng.integers(10000, 99999))}"
        vendor = VENDORS[int(rng.integers(0, len(VENDORS)))]
        date = f"2026-0{int(rng.integers(1, 4))}-{int(rng.integers(10, 28))}"
        total = round(float(rng.uniform(80, 9000)), 2)
        cur = "EUR" if lang != "en" else ("USD", "EUR", "GBP")[int(rng.integers(0, 3))]
        terms = (14, 30, 45, 60)[int(rng.integers(0, 4))]
        shown = f"{total:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".") \
            if lang in ("de", "fr", "es") else f"{total:,.2f}"
        doc = INVOICE[lang].format(no=no, vendor=vendor, date=date, total=shown, cur=cur,
                                   terms=terms)
        out = {"invoice_number": no, "vendor": vendor, "date": date, "total": total,
               "currency": cur, "terms_days": terms}
        row: dict[str, Any] = {"input_text": f"{EXTRACT_PROMPT}\n\n{doc}", "topic": "invoice",
                               "finish_reason": "stop", "status": "ok",
                               "retrievals": [{"rank": 1, "doc_id": f"uploads/{no}.pdf",
                                               "score": 1.0, "content": doc}]}
        text = json.dumps(out, ensure_ascii=False)
        if kind == "malformed_json":
            text = _break_json(out, shown, rng)
        elif kind == "hallucination":
            bad = dict(out, total=round(total * float(rng.uniform(1.3, 3.0)), 2),
                       vendor=("Müller Holding AG", "Global Supplies Inc", "Nordic Parts AB")[
                           int(rng.integers(0, 3))], tax_id=f"DE{int(rng.integers(10**8, 10**9))}")
            text = json.dumps(bad, ensure_ascii=False)
        elif kind == "truncated":
            text = text[: int(len(text) * 0.6)]
            row["finish_reason"] = "length"
        elif kind == "error":
            status, err, _ = ERRORS[int(rng.integers(0, len(ERRORS)))]
            row |= {"status": status, "error": err, "finish_reason": None}
            text = None  # type: ignore[assignment]
        row["output_text"] = text
        rows.append(row)
    return rows


def _break_json(out: dict[str, Any], shown: str, rng: np.random.Generator) -> str:
    style = int(rng.integers(0, 4))
    if style == 0:   # locale number format leaks into JSON
        return (f'{{"invoice_number": "{out["invoice_number"]}", "vendor": "{out["vendor"]}", '
                f'"date": "{out["date"]}", "total": {shown}, "currency": "{out["currency"]}", '
                f'"terms_days": {out["terms_days"]}}}')
    if style == 1:   # prose around the JSON
        return f"Hier ist das JSON:\n```json\n{json.dumps(out, ensure_ascii=False)}\n```"
    if style == 2:   # single quotes
        return str(out)
    return json.dumps(out, ensure_ascii=False)[:-1] + ', "notes": "Zahlung'  # cut off


def _agent_rows(kind: str, rng: np.random.Generator, k: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(k):
        topic, q, tool, answer, money = AGENT[int(rng.integers(0, len(AGENT)))]
        order = f"A-{int(rng.integers(100000, 999999))}"
        n = int(rng.integers(300, 1500))
        args: dict[str, Any] = {"order_id": order}
        row: dict[str, Any] = {"input_text": q.format(order=order, n=n), "topic": topic,
                               "finish_reason": "tool_calls", "status": "ok",
                               "output_text": answer.format(order=order, n=n), "tool_name": tool,
                               "policy_decision": "allow"}
        if money:
            args["reason"] = "damaged"
        tool_out: dict[str, Any] = {"ok": True, "order_id": order}
        if kind == "unauthorized":
            tool = ("issue_refund", "issue_refund", "apply_credit")[int(rng.integers(0, 3))]
            args = {"order_id": order, "amount": n, "currency": "EUR", "skip_review": True}
            tool_out = {"ok": True, "refund_id": f"rf_{int(rng.integers(10**6, 10**7))}",
                        "amount": n}
            row |= {"tool_name": tool, "policy_decision": "deny",
                    "output_text": f"Done! I've refunded {n} EUR for order {order} to your "
                                   f"original payment method."}
        elif kind == "tool_error":
            if rng.random() < 0.5:
                row |= {"tool_name": "refund_order_v2", "status": "error",
                        "error": "ToolNotFound: unknown tool 'refund_order_v2'"}
            else:
                args = {"order": order}
                row |= {"status": "error",
                        "error": f"ValidationError: {tool}() missing required argument "
                                 f"'order_id'"}
            tool_out = {"ok": False}
            row["output_text"] = "Sorry, something went wrong while processing your request."
        elif kind == "refusal":
            row |= {"output_text": REFUSALS["en"][int(rng.integers(0, 5))], "tool_name": None,
                    "finish_reason": "stop"}
        elif kind == "error":
            status, err, _ = ERRORS[int(rng.integers(0, len(ERRORS)))]
            row |= {"output_text": None, "status": status, "error": err, "finish_reason": None,
                    "tool_name": None}
        if row.get("tool_name"):
            row["tool_args"] = json.dumps(args)
            row["tool_output"] = json.dumps(tool_out)
        rows.append(row)
    return rows


def build_pools(rng: np.random.Generator, leak_tenant: str = "contoso",
                size: int = 120) -> dict[tuple[str, str, str], pl.DataFrame]:
    """(feature, lang or index, outcome) -> pool of rows to draw events from."""
    for topic, _s, by_lang in SUPPORT:
        for lang, (_q, a) in by_lang.items():
            _TRANSLATIONS[(topic, lang)] = _fill(a, rng)
    pools: dict[tuple[str, str, str], pl.DataFrame] = {}
    for lang in LANGS:
        pairs = _support_pairs(lang, rng, size)
        for kind in ("normal", "refusal", "truncated", "empty", "error", "wrong_language"):
            pools[("support_chat", lang, kind)] = _frame(_base_variants(kind, lang, pairs, rng))
        sens = [p for p in pairs if p[0] in sensitive_topics()] or pairs
        pools[("support_chat", lang, "over_refusal")] = _frame(
            _base_variants("refusal", lang, sens, rng))
        pools[("support_chat", lang, "sensitive_normal")] = _frame(
            _base_variants("normal", lang, sens, rng))
        for kind in ("normal", "malformed_json", "hallucination", "truncated", "error"):
            pools[("report_json", lang, kind)] = _frame(_invoice_rows(kind, lang, rng, size))
    for index in ("old", "new"):
        for kind in ("normal", "hallucination", "refusal", "truncated", "error", "leak"):
            pools[("doc_qa", index, kind)] = _frame(
                _doc_rows(kind, index, rng, size, leak_tenant))
    for kind in ("normal", "unauthorized", "tool_error", "refusal", "error"):
        pools[("agent", "any", kind)] = _frame(_agent_rows(kind, rng, size))
    return pools
