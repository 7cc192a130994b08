"""Thin asyncio shells around the sans-I/O core: the UDP endpoint and the relay."""
