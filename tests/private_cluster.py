"""A three-node RabbitMQ cluster of the tests' own, whose nodes a test may stop and start.

Each node is a :class:`PrivateBroker` (own node name, ports and data directory);
they share the Erlang cookie of the user ``rabbitmq-server`` runs as, and the
second and third join the first.
"""

import concurrent.futures

from tests.private_broker import PrivateBroker


class PrivateCluster:
    """Three private nodes joined into one cluster."""

    def __init__(self, size: int = 3) -> None:
        self.nodes = [PrivateBroker() for _ in range(size)]

    def __repr__(self) -> str:
        return f"<PrivateCluster {', '.join(node.node for node in self.nodes)}>"

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated, as ``BULKWORKER_AMQP_URL`` takes them."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> None:
        # Booting is the slow part: the nodes boot side by side, then join one by one.
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            for started in [pool.submit(node.start) for node in self.nodes]:
                started.result()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.start_app()

    def node_on_port(self, port: int) -> PrivateBroker:
        return next(node for node in self.nodes if node.port == port)

    def node_named(self, name: str) -> PrivateBroker:
        return next(node for node in self.nodes if node.node == name)

    def leader_of(self, queue: str) -> PrivateBroker:
        """The node that leads quorum queue ``queue`` now."""
        for line in self.nodes[0].ctl("list_queues", "name", "leader").splitlines():
            name, _, leader = line.partition("\t")
            if name == queue:
                return self.node_named(leader.strip())
        raise LookupError(f"{queue!r} is not a queue of {self}")

    def close(self) -> None:
        for node in self.nodes:
            try:
                node.close()
            except Exception:
                continue  # the others must still stop
