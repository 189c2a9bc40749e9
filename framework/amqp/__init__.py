"""Everything that talks to RabbitMQ through aio-pika and aiormq."""
