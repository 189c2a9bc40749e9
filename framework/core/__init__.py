"""The engine and what it needs, pure asyncio."""
