"""Does the container provide every service the consumers ask for? (``bulkworker check``)"""

from typing import Any

from framework.core.consumer import BulkConsumer
from framework.runtime.injection import Resolver


def check_injections(classes: list[type[BulkConsumer]], container: Any) -> None:
    """Raise ConsumerDefinitionError for any marker the container cannot resolve."""
    resolver = Resolver(container)
    for cls in classes:
        resolver.injections(cls.__init__, f"{cls.__name__}.__init__")
        resolver.attribute_injections(cls)
        resolver.injections(cls.handle, f"{cls.__name__}.handle")
