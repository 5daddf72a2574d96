"""Route groups; each module exposes ``add_routes(app)``."""
