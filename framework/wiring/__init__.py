"""From consumer classes to running objects: container, resources, injection, discovery."""
