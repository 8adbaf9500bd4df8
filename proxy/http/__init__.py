"""The data plane: HTTP/1.1 between clients and releases, on asyncio protocols and llhttp."""
