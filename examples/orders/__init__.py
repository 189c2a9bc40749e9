"""The orders application: orders in, one SQLite transaction and one event per bulk out.

Run it with ``bulkworker run examples.orders.main:orchestrator``.
"""
