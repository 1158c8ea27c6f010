"""Storage failures: which of SQLite's errors end a whole batch, which make the connection's view
of the file untrustworthy, and what each means in the node's own words."""

from __future__ import annotations

import apsw

#: Any failure reported by SQLite.
StorageError = apsw.Error

#: Failures of the database as a whole rather than of one request's statement: the
#: transaction is given up, since every other request of the batch would meet them too.
_WHOLE_DATABASE_ERRORS = (
    apsw.BusyError, apsw.LockedError, apsw.FullError, apsw.IOError, apsw.ReadOnlyError,
    apsw.CantOpenError, apsw.CorruptError, apsw.NotADBError, apsw.NoMemError,
)

#: What each kind of SQLite failure means, in the node's words (SQLite's own follow them).
_FAILURES_IN_WORDS: tuple[tuple[type[apsw.Error], str], ...] = (
    (apsw.FullError, "the disk is full"),
    (apsw.BusyError, "the log is locked by another connection"),
    (apsw.LockedError, "the log is locked by another connection"),
    (apsw.IOError, "the disk failed to read or write"),
    (apsw.ReadOnlyError, "the log's file cannot be written"),
    (apsw.CantOpenError, "the log's file cannot be opened"),
    (apsw.CorruptError, "the log's file is damaged"),
    (apsw.NotADBError, "the log's file is not a database"),
    (apsw.NoMemError, "SQLite ran out of memory"),
    (apsw.TooBigError, "the reply would be too big for SQLite"),
)


def describe(error: BaseException) -> str:
    """A storage failure in the node's words, with SQLite's own after them."""
    words = next((words for kind, words in _FAILURES_IN_WORDS if isinstance(error, kind)), "SQLite failed")
    return f"{words} ({error})"


def is_whole_database_error(error: BaseException) -> bool:
    return isinstance(error, _WHOLE_DATABASE_ERRORS)


def cache_untrustworthy_after(error: BaseException) -> bool:
    """Whether, after this error at COMMIT, the connection's view may differ from the disk."""
    return isinstance(error, apsw.IOError)
