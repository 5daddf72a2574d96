"""The HTTP API: aiohttp app, middleware, routes, OpenAPI document and listeners."""
