"""What a PostgreSQL error says about the rows that met it, from its SQLSTATE.

PostgreSQL names every error with a five-character SQLSTATE whose first two
characters are its class (``23`` integrity, ``22`` data, ``08`` connection…).
The mapping is kept here, apart from the driver, so it reads as a table.
"""

from framework.sinks.items import ItemOutcome

UNIQUE_VIOLATION = "23505"
# Classes whose errors belong to the rows written: data (22), integrity (23),
# and cardinality (21: one upsert touching a row twice).
ITEM_CLASSES = ("21", "22", "23")
# The server is going away, refusing us, or out of a resource: not the rows' fault.
OUTAGE_CLASSES = ("08", "53", "28")
OUTAGE_STATES = ("57P01", "57P02", "57P03", "57P04", "57P05", "3D000")
# Transient conflicts with other transactions: the same rows succeed later.
RETRY_STATES = ("40001", "40P01", "55P03", "57014")


def outcome_of(sqlstate: str | None) -> ItemOutcome | None:
    """The outcome an error with ``sqlstate`` means for the rows it met.

    ``ALREADY_STORED`` for a unique violation, ``BAD_ITEM`` for data and other
    integrity errors, ``RETRY`` for serialization failures, deadlocks, lock and
    statement timeouts, ``UNAVAILABLE`` for connection, resource and shutdown
    errors. ``None``: any other error (a missing table, a syntax error) is the
    program's, not the rows': it is raised as it came.
    """
    if not sqlstate:
        return None
    if sqlstate == UNIQUE_VIOLATION:
        return ItemOutcome.ALREADY_STORED
    if sqlstate[:2] in ITEM_CLASSES:
        return ItemOutcome.BAD_ITEM
    if sqlstate in RETRY_STATES:
        return ItemOutcome.RETRY
    if sqlstate[:2] in OUTAGE_CLASSES or sqlstate in OUTAGE_STATES:
        return ItemOutcome.UNAVAILABLE
    return None
