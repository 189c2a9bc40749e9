"""The shipped application: JSON items from the ``items`` queue, stored in bulk in SQLite.

Run it with ``bulkworker run consumers --container consumers.container:AppContainer``.
"""
