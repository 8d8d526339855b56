"""One error family for the whole toolkit.

Every error carries a plain message and a hint; the CLI turns them into
``{"ok": false, "error": ..., "hint": ...}`` and notebooks render them with the hint.

>>> raise CaseLockedError("case.duckdb is in use", hint="close the other session")
Traceback (most recent call last):
...
forensics.core.errors.CaseLockedError: case.duckdb is in use
"""

from __future__ import annotations


class ForensicsError(Exception):
    """Base class: a problem the user can act on, with a hint saying how."""

    hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def to_dict(self) -> dict[str, object]:
        return {"ok": False, "error": self.message, "hint": self.hint,
                "type": type(self).__name__}

    def _repr_html_(self) -> str:
        from html import escape

        return (f"<div style='border-left:4px solid #c0392b;padding:4px 8px'>"
                f"<b>{escape(type(self).__name__)}</b>: {escape(self.message)}"
                f"<br><i>hint:</i> {escape(self.hint)}</div>")


class CaseError(ForensicsError):
    """The case file cannot be opened or is not a forensics case."""

    hint = "check the path; a new case is created when the file does not exist"


class CaseLockedError(CaseError):
    """The case file stayed busy (another process writing, or holding it) past the wait."""

    hint = ("another process holds the case file (the error names it); wait for it to "
            "finish, or raise FORENSICS_LOCK_WAIT")


class ReadOnlyCaseError(CaseError):
    hint = "open a writable copy, or use read_only=True for queries only"


class LoadError(ForensicsError):
    """A whole file could not be loaded (nothing from it was kept)."""

    hint = "fix the file or pass --format / a mapping; nothing from this file was loaded"


class NothingLoadedError(LoadError):
    """A load read its files but kept no row from one of them (the attempt is recorded)."""

    hint = ("see `rejects` for why; load it again with --format or a --mapping naming "
            "the source fields")


class FormatError(LoadError):
    hint = "pass the right --format, or let forensics detect it"


class MappingError(LoadError):
    hint = ("a mapping maps canonical column names to source field paths, "
            "e.g. {'user_id': 'user.id'}")


class QueryError(ForensicsError):
    hint = "see `forensics query CASE --list` for saved queries and their parameters"


class QueryTimeoutError(QueryError):
    hint = "narrow the query (a time window, a feature) or raise the time limit"


class UsageError(ForensicsError):
    hint = "see --help"


def is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C: a KeyboardInterrupt, or DuckDB's report of one that
    arrived while a statement ran (a ``RuntimeError`` saying the query was interrupted).

    >>> is_interrupt(RuntimeError("Query interrupted")), is_interrupt(RuntimeError("x"))
    (True, False)
    """
    return isinstance(exc, KeyboardInterrupt) or (
        type(exc) is RuntimeError and str(exc).strip().lower() == "query interrupted")
