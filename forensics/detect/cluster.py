"""What went wrong (2): group bad events into failure patterns.

Each event becomes one feature vector: its output text (TF-IDF over words, word bigrams,
punctuation and CJK characters, counted set-based in DuckDB, reduced with truncated SVD)
next to what the log says about it (detector labels weighted by confidence, detector
family, finish reason, status, output language, moderation categories, feature, output
length, whether it had retrieved context, and, lightly, its model and versions).

Default method (``families``): events are grouped by their dominant detector family (the
family of their most confident bad label, or "none" when no detector fired), and a family
is split by k-means only where the silhouette shows clear structure (>= 0.5; the "none"
group, which shares no signal, where it shows weak structure, >= 0.25) and each part is
material (>= 5% of the events): families never merge, so a rare pattern (a few
unauthorized actions) is never lost in a big one. ``method="kmeans"`` runs one k-means
over everything, with k chosen by silhouette (or given). No network, no torch: DuckDB,
NumPy, SciPy and scikit-learn.

Each cluster gets a short title from its distinctive terms, its size, the playbook
category of its labels, representative examples (redacted), first and last seen, its
share of bad events per day and its top model / prompt / retrieval versions. A rerun
over the same scope keeps a cluster's id when the new cluster matches an old one by
membership (Jaccard on shared events, Hungarian matching); only the latest run's
membership is kept in ``cluster_members``.

>>> clusters = case.cluster()                      # bad events (view bad_events)
>>> clusters.meta["clusters"] > 1
True
>>> case.cluster("feature = 'doc_qa'", k=3, seed=1).meta["clusters"]
3
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from html import escape
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from forensics.core.db import frame, scalar
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle, require_writable
from forensics.core.redact import redact_text
from forensics.core.result import Result, cell_text, dumps, jsonable
from forensics.core.runs import new_run, quiet
from forensics.core.selection import Pattern, Selection, select

# Severity order: an event with labels of several categories counts for the first.
SEVERITY = ("data_leak", "unauthorized_action", "harmful_output", "misinformation",
            "capability_loss", "degradation")
TOKEN = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]|[\p{L}\p{N}_]+|[^\s\p{L}\p{N}]"
WEIGHTS = {"text": 1.0, "labels": 2.0, "families": 1.4, "meta": 0.3, "versions": 0.1}


@dataclass(frozen=True)
class Settings:
    """Clustering options (all recorded in ``runs.params``)."""

    k: int | None = None
    method: str = "families"   # or "kmeans": one k-means over all events
    k_max: int = 24
    seed: int = 0
    family_min_confidence: float = 0.6
    split_min_silhouette: float = 0.5   # "reasonable structure" (Kaufman & Rousseeuw)
    # The events no detector labelled share no signal, so weak structure (> 0.25, the
    # same scale's "no substantial structure" bound) is enough to split them.
    none_split_min_silhouette: float = 0.25
    split_min_size: int = 20
    split_min_share: float = 0.05       # a sub-pattern covers >= 5% of the events clustered
    split_k_max: int = 8
    svd_components: int = 100
    max_terms: int = 50_000
    min_df: int = 3
    head_chars: int = 500
    tail_chars: int = 100
    fit_sample: int = 20_000
    select_sample: int = 6_000
    silhouette_sample: int = 2_000
    min_jaccard: float = 0.3
    examples: int = 3
    threads: int = 1     # BLAS / OpenMP threads for scikit-learn (1: no oversubscription)
    max_events: int = 2_000_000
    weights: tuple[tuple[str, float], ...] = tuple(WEIGHTS.items())


class ClusterResult(Result):
    """One row per failure pattern; renders with examples in Jupyter."""

    kind = "clusters"

    def _repr_html_(self) -> str:
        head = f"<h4>{escape(self.title)}</h4>"
        meta = "".join(f"<li><b>{escape(str(k))}</b>: {escape(cell_text(jsonable(v)))}</li>"
                       for k, v in self.meta.items() if not isinstance(v, (list, dict)))
        rows = []
        for r in self.rows():
            examples = "".join(f"<li><code>{escape(e['event_id'])}</code> "
                               f"{escape(e['text'])}</li>" for e in r["examples"])
            versions = ", ".join(f"{k}: {escape(str(v))}" for k, v in r["top_versions"].items()
                                 if v)
            rows.append(
                f"<tr><td><b>{escape(r['cluster_id'])}</b></td><td>{escape(r['title'])}"
                f"<details><summary>{len(r['examples'])} examples</summary><ul>{examples}"
                f"</ul><p><i>terms:</i> {escape(', '.join(r['terms']))}<br>"
                f"<i>versions:</i> {versions}</p></details></td>"
                f"<td>{r['size']:,}</td><td>{r['share']:.1%}</td>"
                f"<td>{escape(r['category'])}</td><td>{escape(r['top_labels'])}</td>"
                f"<td>{escape(str(r['first_seen']))}</td><td>{escape(str(r['last_seen']))}</td>"
                f"<td>{escape(r['status'])}</td></tr>")
        header = "".join(f"<th>{h}</th>" for h in ("id", "pattern", "events", "share",
                                                   "category", "labels", "first seen",
                                                   "last seen", "identity"))
        return (f"<div class='forensics-result'>{head}<ul>{meta}</ul><table><thead><tr>"
                f"{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")

    def to_markdown(self, max_rows: int = 50) -> str:
        lines = [f"**{self.title}**", ""]
        lines += [f"- {k}: {cell_text(jsonable(v))}" for k, v in self.meta.items()
                  if not isinstance(v, (list, dict))]
        lines += ["", "| id | pattern | events | share | category | labels | first seen | "
                      "last seen |", "|---|---|---|---|---|---|---|---|"]
        for r in self.rows()[:max_rows]:
            lines.append(f"| {r['cluster_id']} | {r['title']} | {r['size']} | "
                         f"{r['share']:.1%} | {r['category']} | {r['top_labels']} | "
                         f"{r['first_seen']} | {r['last_seen']} |")
            for e in r["examples"][:2]:
                text = cell_text(e["text"]).replace("|", "\\|").replace("\n", " ")
                lines.append(f"|  | e.g. `{e['event_id']}`: {text} | | | | | | |")
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        """Each pattern's share of the bad events per day (stacked; the largest eight, the
        rest as "other")."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(9, 3.5))
        daily = (self.df.select("cluster_id", "title", "share_over_time")
                 .explode("share_over_time").drop_nulls("share_over_time")
                 .unnest("share_over_time"))
        if daily.height == 0:
            ax.text(0.5, 0.5, "no timestamps", ha="center")
            return ax
        top = self.df["cluster_id"].head(8).to_list()
        daily = daily.with_columns(
            pl.when(pl.col("cluster_id").is_in(top)).then(pl.col("cluster_id"))
            .otherwise(pl.lit("other")).alias("cluster_id"))
        table = (daily.group_by("day", "cluster_id").agg(pl.col("share").sum())
                 .pivot(on="cluster_id", index="day", values="share").fill_null(0.0)
                 .sort("day"))
        names = [c for c in [*top, "other"] if c in table.columns]
        titles = dict(zip(self.df["cluster_id"].to_list(), self.df["title"].to_list(),
                          strict=True))
        ax.stackplot(table["day"].to_list(), *[table[c].to_list() for c in names],
                     labels=[f"{c} {titles.get(c, '')[:28]}" for c in names])
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of the day's bad events")
        ax.set_title(self.title)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        ax.figure.autofmt_xdate()
        return ax


# ---------------------------------------------------------------------------------------
# selecting the events

def _docs(case: CaseHandle, cond: str, s: Settings) -> int:
    """Materialise the selected events as temp table ``_cl_docs`` (doc = row number in
    event_id order); returns how many."""
    case.con.execute(f"""
CREATE OR REPLACE TEMP TABLE _cl_docs AS
SELECT row_number() OVER (ORDER BY f.event_id) - 1 AS doc, f.event_id, f.ts, f.feature,
       f.model, f.prompt_version, f.retrieval_version, f.release, f.finish_reason, f.status,
       f.output_language, f.flagged_categories, f.labels, f.tool_name,
       CASE WHEN f.output_text IS NULL OR NOT regexp_matches(f.output_text, '\\S')
            THEN coalesce(f.error, '')   -- no output: what the log says instead
            WHEN length(f.output_text) <= $head + $tail THEN f.output_text
            ELSE left(f.output_text, $head) || ' … ' || right(f.output_text, $tail) END AS text,
       length(f.output_text) AS n_chars,
       f.event_id IN (SELECT event_id FROM retrievals) AS has_context
FROM event_facts f WHERE {cond}""", {"head": s.head_chars, "tail": s.tail_chars})
    # identical texts are vectorised once (refusal templates, error messages, replays)
    case.con.execute("""
CREATE OR REPLACE TEMP TABLE _cl_texts AS
SELECT row_number() OVER (ORDER BY th) - 1 AS u, th, text
FROM (SELECT hash(text) AS th, min(text) AS text FROM _cl_docs GROUP BY 1)""")
    return int(scalar(case.con, "SELECT count(*) FROM _cl_docs") or 0)


# ---------------------------------------------------------------------------------------
# features

def text_matrix(case: CaseHandle, n_docs: int, s: Settings
                ) -> tuple[sp.csr_matrix, list[str], np.ndarray]:
    """TF-IDF (sublinear tf, smooth idf, L2 rows) of the distinct texts of ``_cl_docs``
    over words, word bigrams, punctuation and CJK characters, counted in DuckDB (terms
    are hashed; their text is kept for the vocabulary only). The vocabulary (at most
    ``max_terms`` terms in at least ``min_df`` texts) and the idf come from a sample of
    ``fit_sample`` texts. Returns the matrix (one row per distinct text), its terms, and
    each doc's row."""
    from sklearn.preprocessing import normalize

    n_texts = int(scalar(case.con, "SELECT count(*) FROM _cl_texts") or 0)
    n_fit = min(n_texts, s.fit_sample)
    case.con.execute("""
CREATE OR REPLACE TEMP TABLE _cl_vocab AS
WITH w AS (SELECT u, regexp_extract_all(lower(text), $tok) AS w FROM _cl_texts
           WHERE $every = 1 OR hash(u, $seed) % $every = 0),
g AS (SELECT u, unnest(list_concat(list_transform(w, lambda x: x),
                                   list_transform(range(1, len(w)),
                                                  lambda i: w[i] || ' ' || w[i + 1]))) AS term,
             unnest(list_concat(list_transform(w, lambda x: hash(x)),
                                list_transform(range(1, len(w)),
                                               lambda i: hash(w[i], w[i + 1])))) AS h
      FROM w)
SELECT min(term) AS term, h,
       CAST(row_number() OVER (ORDER BY count(DISTINCT u) DESC, min(term), h) - 1 AS INTEGER)
           AS j,
       ln((1 + $n) / (1 + count(DISTINCT u))) + 1 AS idf
FROM g GROUP BY h
HAVING count(DISTINCT u) >= $min_df AND count(DISTINCT u) <= greatest(0.95 * $n, $min_df)
ORDER BY j LIMIT $max_terms""",
                     {"tok": TOKEN, "n": n_fit, "seed": s.seed,
                      "every": max(1, int(np.ceil(n_texts / max(s.fit_sample, 1)))),
                      "min_df": min(s.min_df, max(n_fit // 2, 1)), "max_terms": s.max_terms})
    arr = case.con.execute("""
WITH w AS (SELECT u, regexp_extract_all(lower(text), $tok) AS w FROM _cl_texts),
g AS (SELECT u, unnest(list_concat(list_transform(w, lambda x: hash(x)),
                                   list_transform(range(1, len(w)),
                                                  lambda i: hash(w[i], w[i + 1])))) AS h
      FROM w)
SELECT g.u, v.j, (1 + ln(count(*))) * any_value(v.idf) AS w
FROM g JOIN _cl_vocab v USING (h) GROUP BY g.u, v.j ORDER BY g.u, v.j""",
                           {"tok": TOKEN}).fetchnumpy()
    terms = [r[0] for r in case.con.execute("SELECT term FROM _cl_vocab ORDER BY j").fetchall()]
    matrix = sp.csr_matrix((np.asarray(arr["w"], dtype=np.float32),
                            (np.asarray(arr["u"]), np.asarray(arr["j"]))),
                           shape=(n_texts, max(len(terms), 1)))
    matrix.sum_duplicates()
    doc_u = case.con.execute("SELECT t.u FROM _cl_docs d JOIN _cl_texts t ON t.th = hash(d.text) "
                             "ORDER BY d.doc").fetchnumpy()["u"]
    return normalize(matrix), terms, np.asarray(doc_u, dtype=np.int64)


META_SQL = """
WITH lab AS (   -- labels that mean a bad output and belong to a detector family
    SELECT d.doc, l.label, v.family, max(l.confidence) AS conf
    FROM _cl_docs d JOIN labels l USING (event_id) JOIN label_vocabulary v ON v.label = l.label
    WHERE v.bad AND v.family IS NOT NULL GROUP BY ALL
)
SELECT doc, 'label=' || label AS token, coalesce(conf, 0.5) ** 2 AS w, 'labels' AS block
FROM lab
UNION ALL SELECT doc, 'label=none', 1.0, 'labels' FROM _cl_docs
WHERE doc NOT IN (SELECT doc FROM lab)
UNION ALL SELECT doc, 'family=' || family, max(coalesce(conf, 0.5)) ** 2, 'families'
FROM lab GROUP BY ALL
UNION ALL SELECT doc, 'finish=' || lower(finish_reason), 1.0, 'meta' FROM _cl_docs
WHERE finish_reason IS NOT NULL
UNION ALL SELECT doc, 'status=' || lower(status), 1.0, 'meta' FROM _cl_docs
WHERE status IS NOT NULL
UNION ALL SELECT doc, 'lang=' || output_language, 1.0, 'meta' FROM _cl_docs
WHERE output_language IS NOT NULL
UNION ALL SELECT doc, 'flag=' || unnest(flagged_categories), 1.0, 'meta' FROM _cl_docs
UNION ALL SELECT doc, 'feature=' || feature, 1.0, 'meta' FROM _cl_docs WHERE feature IS NOT NULL
UNION ALL SELECT doc, 'context=yes', 1.0, 'meta' FROM _cl_docs WHERE has_context
UNION ALL SELECT doc, 'tool=yes', 1.0, 'meta' FROM _cl_docs WHERE tool_name IS NOT NULL
UNION ALL SELECT doc, 'length=' || CASE WHEN n_chars IS NULL OR n_chars = 0 THEN 'none'
    WHEN n_chars < 80 THEN 'short' WHEN n_chars < 400 THEN 'medium' WHEN n_chars < 1500
    THEN 'long' ELSE 'very_long' END, 1.0, 'meta' FROM _cl_docs
UNION ALL SELECT doc, 'model=' || model, 1.0, 'versions' FROM _cl_docs WHERE model IS NOT NULL
UNION ALL SELECT doc, 'prompt=' || prompt_version, 1.0, 'versions' FROM _cl_docs
WHERE prompt_version IS NOT NULL
UNION ALL SELECT doc, 'retrieval=' || retrieval_version, 1.0, 'versions' FROM _cl_docs
WHERE retrieval_version IS NOT NULL
"""
BLOCKS = ("labels", "families", "meta", "versions")
UNSCALED = ("labels", "families")   # confidence-valued: kept as is, not row-normalised


def meta_matrices(case: CaseHandle, n_docs: int) -> dict[str, tuple[sp.csr_matrix, list[str]]]:
    """One sparse matrix per metadata block. Label and family cells hold the detector's
    confidence squared (a heuristic at 0.5 weighs a quarter of a sure finding); an event
    with no categorised label gets ``label=none`` (the silent failures, found by review or
    feedback only). The meta and version blocks are one-hot, rows L2-normalised."""
    from sklearn.preprocessing import normalize

    # A null in any metadata column (a moderation category, a version) is no token: a
    # concatenation with NULL would give a NULL token, which neither sorts nor means anything.
    # In a fixed order: the sparse sums (and so every float after them) do not depend on
    # how DuckDB's threads happened to return the rows.
    df = frame(case.con, f"SELECT * FROM ({META_SQL}) WHERE token IS NOT NULL AND w IS NOT NULL "
                         "ORDER BY block, doc, token, w")
    out = {}
    for block in BLOCKS:
        part = df.filter(pl.col("block") == block)
        tokens = sorted(set(part["token"].to_list()))
        index = {t: i for i, t in enumerate(tokens)}
        cols = np.array([index[t] for t in part["token"].to_list()], dtype=np.int64)
        m = sp.csr_matrix((part["w"].to_numpy().astype(np.float32),
                           (part["doc"].to_numpy(), cols)), shape=(n_docs, max(len(tokens), 1)))
        m.sum_duplicates()
        out[block] = (m if block in UNSCALED else normalize(m), tokens)
    return out


def features(text: sp.csr_matrix, doc_u: np.ndarray,
             meta: dict[str, tuple[sp.csr_matrix, list[str]]], s: Settings,
             rng: np.random.Generator, embed: np.ndarray | None = None) -> np.ndarray:
    """The dense vectors k-means sees: SVD of the text block (distinct texts; or the given
    embeddings of them), then each block weighted."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize

    w = dict(s.weights)
    if embed is not None:
        z = normalize(np.asarray(embed, dtype=np.float32))
    elif text.shape[0] < 3 or text.shape[1] < 3:
        z = text.toarray().astype(np.float32)
    else:
        n_comp = max(1, min(s.svd_components, text.shape[1] - 1, text.shape[0] - 1))
        fit_rows = _sample(text.shape[0], s.fit_sample, rng)
        svd = TruncatedSVD(n_comp, random_state=s.seed).fit(text[fit_rows])
        z = normalize(svd.transform(text).astype(np.float32))
    blocks = [w.get("text", 1.0) * z[doc_u]]
    for name in BLOCKS:
        m = meta[name][0]
        blocks.append(w.get(name, 0.0) * m.toarray().astype(np.float32))
    return np.hstack(blocks)


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size=size, replace=False))


# ---------------------------------------------------------------------------------------
# k-means with k chosen by silhouette

def candidate_ks(k_max: int) -> list[int]:
    """The numbers of clusters tried: every k up to 12, then a coarser grid."""
    return [k for k in [*range(2, 13), 14, 16, 20, 24, 32, 40] if k <= k_max]


def choose_k(x: np.ndarray, s: Settings, rng: np.random.Generator) -> tuple[int, dict[int, float]]:
    """The k with the best silhouette (Euclidean on the weighted unit blocks), fitted on a
    sample of ``select_sample`` rows and scored on ``silhouette_sample`` of them; returns
    k and every score."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    fit = x[_sample(len(x), s.select_sample, rng)]
    distinct = len(np.unique(fit.round(4), axis=0))
    ks = [k for k in candidate_ks(s.k_max) if k < min(distinct, len(fit))]
    if not ks:
        return 1, {}
    scores: dict[int, float] = {}
    probe = _sample(len(fit), s.silhouette_sample, rng)
    for k in ks:
        labels = KMeans(k, n_init=2, random_state=s.seed).fit_predict(fit)
        if len(set(labels[probe])) < 2:
            continue
        scores[k] = float(silhouette_score(fit[probe], labels[probe]))
    if not scores:
        return 1, {}
    return max(scores, key=lambda k: (round(scores[k], 3), -k)), scores


def kmeans(x: np.ndarray, k: int, s: Settings, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """Assignments of every row and the centroids (fit on a sample, then predict)."""
    from sklearn.cluster import KMeans

    if k <= 1:
        return np.zeros(len(x), dtype=np.int64), x.mean(axis=0, keepdims=True)
    model = KMeans(k, n_init=8, random_state=s.seed).fit(x[_sample(len(x), s.fit_sample, rng)])
    return model.predict(x).astype(np.int64), model.cluster_centers_


def family_groups(case: CaseHandle, s: Settings) -> tuple[np.ndarray, list[str]]:
    """Each doc's dominant detector family: the family of its most confident bad label
    (confidence at least ``family_min_confidence``; ties to the more severe category), or
    ``none`` (no detector fired: failures found by review or feedback only)."""
    df = frame(case.con, """
WITH fam AS (
    SELECT d.doc, v.family, max(l.confidence) AS conf,
           min(list_position($severity, v.category)) AS severity
    FROM _cl_docs d JOIN labels l USING (event_id) JOIN label_vocabulary v ON v.label = l.label
    WHERE v.bad AND v.family IS NOT NULL AND l.confidence >= $min_conf GROUP BY ALL
), top AS (   -- ties go to the family name, so the choice never depends on row order
    SELECT doc, family FROM fam QUALIFY row_number() OVER (
        PARTITION BY doc ORDER BY conf * 100 - coalesce(severity, 9) DESC, family) = 1
)
SELECT d.doc, coalesce(t.family, 'none') AS family FROM _cl_docs d LEFT JOIN top t USING (doc)
ORDER BY d.doc""", {"severity": list(SEVERITY), "min_conf": s.family_min_confidence})
    names = sorted(set(df["family"].to_list()))
    codes = np.array([names.index(f) for f in df["family"].to_list()], dtype=np.int64)
    return codes, names


def split_groups(x: np.ndarray, groups: np.ndarray, s: Settings, rng: np.random.Generator,
                 none: int | None = None) -> tuple[np.ndarray, dict[int, float]]:
    """Within each family group, k-means on all features when the group clearly falls apart
    (best silhouette at least ``split_min_silhouette``) into material sub-patterns (each at
    least ``split_min_share`` of all events and ``split_min_size``); otherwise the group
    stays whole. Families never merge, so a small family is never lost in a big one. The
    group ``none`` (no detector family) needs only ``none_split_min_silhouette``."""
    assign = np.zeros(len(x), dtype=np.int64)
    scores: dict[int, float] = {}
    next_id = 0
    min_part = max(s.split_min_size, int(np.ceil(s.split_min_share * len(x))))
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        sub = replace(s, k_max=min(s.split_k_max, len(idx) // min_part))
        k, found = choose_k(x[idx], sub, rng) if sub.k_max >= 2 else (1, {})
        parts = np.zeros(len(idx), dtype=np.int64)
        bar = s.none_split_min_silhouette if g == none else s.split_min_silhouette
        if k > 1 and found.get(k, 0.0) >= bar:
            parts, _ = kmeans(x[idx], k, s, rng)
            if np.bincount(parts).min() < min_part:
                parts = np.zeros(len(idx), dtype=np.int64)
        assign[idx] = parts + next_id
        scores[int(g)] = round(found.get(k, 0.0), 3) if k > 1 else 0.0
        next_id += int(parts.max()) + 1
    return assign, scores


# ---------------------------------------------------------------------------------------
# describing clusters

def distinctive_terms(text: sp.csr_matrix, terms: list[str], assign: np.ndarray, k: int,
                      top: int = 6) -> list[list[str]]:
    """Per cluster, the terms whose mean TF-IDF inside exceeds their mean outside the
    most (words and bigrams only, no punctuation)."""
    if not terms or text.shape[1] == 0:
        return [[] for _ in range(k)]
    member = sp.csr_matrix((np.ones(len(assign), dtype=np.float32),
                            (assign, np.arange(len(assign)))), shape=(k, len(assign)))
    sums = np.asarray((member @ text).todense())
    sizes = np.bincount(assign, minlength=k).astype(np.float32)[:, None]
    inside = sums / np.maximum(sizes, 1)
    outside = (sums.sum(axis=0, keepdims=True) - sums) / np.maximum(len(assign) - sizes, 1)
    score = inside - outside
    wordy = np.array([_title_term(t) for t in terms])
    score[:, ~wordy] = -np.inf
    out = []
    for c in range(k):
        order = np.argsort(-score[c])[: top * 3]
        picked: list[str] = []
        for j in order:
            if not np.isfinite(score[c, j]) or score[c, j] <= 0:
                break
            term = terms[j]
            if any(term in p or p in term for p in picked):
                continue
            picked.append(term)
            if len(picked) == top:
                break
        out.append(picked)
    return out


FILLER = frozenset(("a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "for",
                    "from", "by", "with", "as", "is", "are", "was", "were", "be", "been", "it",
                    "its", "this", "that", "these", "those", "i", "you", "he", "she", "we", "they",
                    "me", "my", "your", "our", "their", "his", "her", "not", "no", "do", "does",
                    "did", "can", "will", "would", "should", "could", "may", "might", "if", "then",
                    "than", "so", "there", "here", "what", "which", "who", "how", "when", "where"))


def _title_term(term: str) -> bool:
    """A term worth a title: words only (no punctuation), not all filler words."""
    words = term.split(" ")
    return (all(any(ch.isalpha() for ch in w) for w in words)
            and any(len(w) > 2 and w not in FILLER for w in words))


def _profile(case: CaseHandle, assign: np.ndarray) -> pl.DataFrame:
    """Per cluster: size, times, top labels / category, top versions (from SQL)."""
    case.con.register("_cl_assign_frame", pl.DataFrame({"doc": np.arange(len(assign)),
                                                        "c": assign}).to_arrow())
    case.con.execute("CREATE OR REPLACE TEMP TABLE _cl_assign AS SELECT * FROM _cl_assign_frame")
    case.con.unregister("_cl_assign_frame")
    return frame(case.con, """
WITH d AS (SELECT d.*, a.c FROM _cl_docs d JOIN _cl_assign a USING (doc)),
ev_cat AS (   -- each event's most severe labelled category
    SELECT d.doc, arg_min(v.category, list_position($severity, v.category)) AS category
    FROM d JOIN labels l USING (event_id) JOIN label_vocabulary v ON v.label = l.label
    WHERE v.bad AND v.category IS NOT NULL GROUP BY d.doc
),
lab AS (   -- labels that name a failure (generic verdicts such as "bad" say nothing)
    SELECT c, label, count(*) AS n FROM (SELECT c, unnest(labels) AS label FROM d)
    WHERE label NOT IN (SELECT label FROM label_vocabulary WHERE category IS NULL)
    GROUP BY ALL),
cat AS (SELECT d.c, e.category, count(*) AS n FROM d JOIN ev_cat e USING (doc) GROUP BY ALL)
SELECT c, count(*) AS size, min(ts) AS first_seen, max(ts) AS last_seen,
       (SELECT list(label || ' ' || n ORDER BY n DESC, label)[1:4] FROM lab WHERE lab.c = d.c)
           AS top_labels,
       (SELECT list(category ORDER BY n DESC, list_position($severity, category))[1]
        FROM cat WHERE cat.c = d.c) AS category,
       (SELECT max(n) FROM cat WHERE cat.c = d.c) AS category_events
FROM d GROUP BY c ORDER BY c""", {"severity": list(SEVERITY)})


def _top_versions(case: CaseHandle) -> dict[int, dict[str, Any]]:
    df = frame(case.con, """
SELECT c, name, value, count(*) AS n FROM (
    SELECT a.c, unnest(['model', 'prompt_version', 'retrieval_version', 'feature', 'release'])
               AS name,
           unnest([d.model, d.prompt_version, d.retrieval_version, d.feature, d.release])
               AS value
    FROM _cl_docs d JOIN _cl_assign a USING (doc))
WHERE value IS NOT NULL GROUP BY ALL ORDER BY c, name, n DESC, value""")
    out: dict[int, dict[str, Any]] = {}
    for (c, name), part in df.group_by(["c", "name"], maintain_order=True):
        out.setdefault(int(c), {})[str(name)] = [
            {"value": v, "events": int(n)} for v, n in
            zip(part["value"].to_list()[:3], part["n"].to_list()[:3], strict=True)]
    return out


def _daily(case: CaseHandle) -> dict[int, list[dict[str, Any]]]:
    df = frame(case.con, """
WITH per AS (
    SELECT a.c, date_trunc('day', d.ts) AS day, count(*) AS events
    FROM _cl_docs d JOIN _cl_assign a USING (doc) WHERE d.ts IS NOT NULL GROUP BY ALL)
SELECT c, day, events, events / sum(events) OVER (PARTITION BY day) AS share
FROM per ORDER BY c, day""")
    out: dict[int, list[dict[str, Any]]] = {}
    for c, day, events, share in df.iter_rows():
        out.setdefault(int(c), []).append({"day": day, "events": int(events),
                                           "share": round(float(share), 4)})
    return out


def _examples(x: np.ndarray, centroids: np.ndarray, assign: np.ndarray, n: int
              ) -> dict[int, list[int]]:
    """Per cluster, the docs nearest its centroid (distinct vectors first)."""
    out: dict[int, list[int]] = {}
    for c in range(len(centroids)):
        idx = np.flatnonzero(assign == c)
        if len(idx) == 0:
            continue
        dist = np.linalg.norm(x[idx] - centroids[c], axis=1)
        order = idx[np.argsort(dist, kind="stable")]
        seen: set[bytes] = set()
        picked = []
        for i in order:
            key = x[i].round(3).tobytes()
            if key in seen:
                continue
            seen.add(key)
            picked.append(int(i))
            if len(picked) == n:
                break
        out[c] = picked
    return out


def _title(terms: list[str], top_labels: list[str] | None, size: int) -> str:
    label = ""
    if top_labels:
        name, _, count = top_labels[0].rpartition(" ")
        if int(count) >= 0.5 * size:
            label = name
    words = " · ".join(terms[:3]) if terms else "no distinctive terms"
    return f"{label}: {words}" if label else words


# ---------------------------------------------------------------------------------------
# identities across runs

def _previous(case: CaseHandle, scope: str) -> tuple[list[str], pl.DataFrame]:
    """Run ids of earlier runs over the same scope, and the latest one's members."""
    runs = [r[0] for r in case.con.execute(
        "SELECT run_id FROM runs WHERE stage = 'cluster' AND json_extract_string(params, "
        "'$.scope') = ? ORDER BY created_at DESC, run_id DESC", [scope]).fetchall()]
    if not runs:
        return [], pl.DataFrame({"event_id": [], "old": []},
                                schema={"event_id": pl.String, "old": pl.String})
    members = frame(case.con, "SELECT event_id, cluster_id AS old FROM cluster_members "
                              "WHERE run_id = ?", [runs[0]])
    return runs, members


def match_identities(event_ids: pl.Series, assign: np.ndarray, previous: pl.DataFrame,
                     min_jaccard: float) -> dict[int, tuple[str, float]]:
    """New cluster -> (old cluster id, Jaccard) where they still fit: Hungarian matching
    on the Jaccard overlap of their members among events in both runs."""
    from scipy.optimize import linear_sum_assignment

    if previous.height == 0:
        return {}
    now = pl.DataFrame({"event_id": event_ids, "new": assign})
    both = now.join(previous, on="event_id", how="inner")
    if both.height == 0:
        return {}
    inter = both.group_by("new", "old").len()
    new_sizes = both.group_by("new").len().rename({"len": "n_new"})
    old_sizes = both.group_by("old").len().rename({"len": "n_old"})
    inter = inter.join(new_sizes, on="new").join(old_sizes, on="old").with_columns(
        (pl.col("len") / (pl.col("n_new") + pl.col("n_old") - pl.col("len"))).alias("j"))
    news = sorted(set(inter["new"].to_list()))
    olds = sorted(set(inter["old"].to_list()))
    cost = np.zeros((len(news), len(olds)))
    for new, old, j in inter.select("new", "old", "j").iter_rows():
        cost[news.index(new), olds.index(old)] = j
    rows, cols = linear_sum_assignment(-cost)
    return {int(news[r]): (olds[c], float(cost[r, c])) for r, c in zip(rows, cols, strict=True)
            if cost[r, c] >= min_jaccard}


def _next_ids(case: CaseHandle, n: int) -> list[str]:
    used = scalar(case.con, "SELECT max(TRY_CAST(regexp_extract(cluster_id, '^C(\\d+)$', 1) "
                            "AS INTEGER)) FROM clusters") or 0
    return [f"C{int(used) + i + 1:03d}" for i in range(n)]


# ---------------------------------------------------------------------------------------
# the public function

def cluster(case: CaseHandle, pattern: Pattern = "bad", *, k: int | None = None, seed: int = 0,
            k_max: int = 24, weights: dict[str, float] | None = None,
            embed: Callable[[list[str]], np.ndarray] | None = None,
            **options: Any) -> ClusterResult:
    """Group the events of ``pattern`` (default: bad events; any value
    :func:`forensics.core.selection.select` takes) into failure patterns,
    write ``clusters`` / ``cluster_members`` and describe each pattern.

    ``k``: number of clusters (default: chosen by silhouette in 2..``k_max``). ``weights``:
    of the feature blocks ``text``, ``labels``, ``meta``, ``versions``. ``embed``: an
    optional function from texts to vectors (e.g. a model shipped inside a wheel) used
    instead of the TF-IDF/SVD text block. Other options: see :class:`Settings`.

    >>> cluster(case, "feature = 'support_chat'", seed=3).meta["events"] > 0
    True
    """
    require_writable(case, "cluster")
    unknown = set(options) - set(Settings.__dataclass_fields__)
    if unknown:
        raise UsageError(f"unknown clustering option {sorted(unknown)}",
                         hint="options: " + ", ".join(Settings.__dataclass_fields__))
    w = {**WEIGHTS, **(weights or {})}
    s = Settings(k=k, seed=seed, k_max=k_max, weights=tuple(w.items()), **options)
    if s.method not in ("families", "kmeans"):
        raise UsageError(f"unknown clustering method {s.method!r}",
                         hint="method='families' (default) or 'kmeans'")
    with quiet(case):
        return _cluster(case, select(case, pattern), s, embed)


def _cluster(case: CaseHandle, sel: Selection, s: Settings,
             embed: Callable[[list[str]], np.ndarray] | None) -> ClusterResult:
    k, seed = s.k, s.seed
    cond, where = sel.inline(), sel.description
    n = _docs(case, cond, s)
    if n == 0:
        raise UsageError(f"no events match {where!r}",
                         hint="run `forensics detect` first, or pass the pattern 'all' or "
                              "another condition")
    if n > s.max_events:
        raise UsageError(f"{n:,} events match {where!r}; clustering holds them in memory "
                         f"(limit max_events={s.max_events:,})",
                         hint="narrow the pattern (a feature, a time window, a label), or raise "
                              "max_events on a machine with the memory for it")
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    text, terms, doc_u = text_matrix(case, n, s)
    meta = meta_matrices(case, n)
    vectors = None
    if embed is not None:
        vectors = embed(frame(case.con, "SELECT text FROM _cl_texts ORDER BY u")["text"]
                        .to_list())
    scores: dict[Any, Any] = {}
    with threadpool_limits(limits=s.threads):
        x = features(text, doc_u, meta, s, rng, vectors)
        if k is None and s.method == "families":
            groups, names = family_groups(case, s)
            assign, split = split_groups(x, groups, s, rng,
                                         names.index("none") if "none" in names else None)
            scores = {"split_silhouette": {names[g]: v for g, v in split.items()}}
        else:
            chosen = k
            if chosen is None:
                chosen, scores = choose_k(x, s, rng)
            assign, _ = kmeans(x, max(1, min(int(chosen), n)), s, rng)
    assign = _compact(assign)
    return _store(case, where, cond, s, x, text[doc_u], terms, assign, scores)


def _compact(assign: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..k-1 by decreasing size (ties by first member)."""
    values, first, counts = np.unique(assign, return_index=True, return_counts=True)
    order = sorted(range(len(values)), key=lambda i: (-counts[i], first[i]))
    remap = np.empty(values.max() + 1, dtype=np.int64)
    for new, i in enumerate(order):
        remap[values[i]] = new
    return remap[assign]


def _store(case: CaseHandle, where: str, cond: str, s: Settings, x: np.ndarray,
           text: sp.csr_matrix, terms: list[str], assign: np.ndarray,
           scores: dict[Any, Any]) -> ClusterResult:
    k = int(assign.max()) + 1
    centroids = np.vstack([x[assign == c].mean(axis=0) for c in range(k)])
    docs = frame(case.con, "SELECT doc, event_id, text FROM _cl_docs ORDER BY doc")
    profile = _profile(case, assign)
    versions = _top_versions(case)
    daily = _daily(case)
    picks = _examples(x, centroids, assign, s.examples)
    words = distinctive_terms(text, terms, assign, k)
    scope = json.dumps({"where": cond})
    runs, previous = _previous(case, scope)
    matched = match_identities(docs["event_id"], assign, previous, s.min_jaccard)
    fresh = iter(_next_ids(case, k - len(matched)))
    ids = {c: matched[c][0] if c in matched else next(fresh) for c in range(k)}
    total = len(assign)
    rows = []
    for c in range(k):
        prof = profile.row(c, named=True)
        top_labels = prof["top_labels"] or []
        category = prof["category"] if (prof["category_events"] or 0) >= 0.2 * prof["size"] \
            else "unclassified"
        examples = [{"event_id": docs["event_id"][i],
                     "text": (redact_text(docs["text"][i]) or "")[:300]} for i in picks.get(c, [])]
        rows.append({
            "cluster_id": ids[c], "title": _title(words[c], top_labels, prof["size"]),
            "size": int(prof["size"]), "share": round(prof["size"] / total, 4),
            "category": category, "top_labels": ", ".join(top_labels),
            "first_seen": prof["first_seen"], "last_seen": prof["last_seen"],
            "terms": words[c], "examples": examples,
            "top_versions": {name: (v[0]["value"] if v else None)
                             for name, v in versions.get(c, {}).items()},
            "versions": versions.get(c, {}), "share_over_time": daily.get(c, []),
            "status": (f"kept (Jaccard {matched[c][1]:.2f})" if c in matched else "new"),
        })
    params = {"where": where, "scope": scope, "settings": s.__dict__, "k_scores": scores,
              "events": total}
    run_id = _write(case, rows, docs["event_id"], assign, ids, runs, params)
    df = pl.DataFrame([{kk: v for kk, v in r.items() if kk not in ("versions",)} for r in rows])
    sql = ("SELECT cluster_id, title, size, category, terms, detail FROM clusters "
           "WHERE run_id = $run_id ORDER BY size DESC, cluster_id")
    kept = sum(1 for c in range(k) if c in matched)
    meta = {"run_id": run_id, "events": total, "clusters": k,
            "method": "k given" if s.k is not None else s.method,
            "silhouette": round(scores[k], 3) if k in scores else None,
            "kept_identities": kept, "where": where}
    return ClusterResult(df, sql=sql, params={"run_id": run_id}, title="failure patterns",
                         meta=meta)


def _write(case: CaseHandle, rows: list[dict[str, Any]], event_ids: pl.Series, assign: np.ndarray,
           ids: dict[int, str], old_runs: Sequence[str], params: dict[str, Any]) -> str:
    members = pl.DataFrame({"event_id": event_ids,
                            "cluster_id": [ids[int(c)] for c in assign]})
    case.con.execute("BEGIN")
    try:
        run_id = new_run(case, "cluster", params)
        if old_runs:   # only the latest run's membership is kept (clusters keep history)
            case.con.execute("DELETE FROM cluster_members WHERE list_contains($runs, run_id)",
                             {"runs": list(old_runs)})
        for r in rows:
            detail = {kk: r[kk] for kk in ("share", "top_labels", "first_seen", "last_seen",
                                            "examples", "versions", "share_over_time",
                                            "status")}
            case.con.execute("INSERT INTO clusters VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [r["cluster_id"], run_id, r["title"], r["terms"], r["size"],
                              r["category"], dumps(detail, ensure_ascii=True)])
        case.con.register("_cl_members", members.to_arrow())
        case.con.execute("INSERT INTO cluster_members SELECT event_id, cluster_id, $run_id "
                         "FROM _cl_members", {"run_id": run_id})
        case.con.unregister("_cl_members")
        case.con.execute("COMMIT")
    except BaseException:
        case.con.execute("ROLLBACK")
        raise
    return run_id
