"""Exit statuses of the ``bulkworker`` command."""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CODES = (
    "exit codes: 0 done, 1 an error or a problem found (said on stderr), 2 wrong usage; "
    "run: 1 also when a consumer's worker died, the status asked for when handle raised "
    "SystemExit, 130 for KeyboardInterrupt"
)
# An exec probe must answer well within the kubelet's own timeout.
PROBE_TIMEOUT = 5.0
