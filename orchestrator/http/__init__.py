"""The HTTP edge: FastAPI app, routers, error mapping, auth dependencies."""
