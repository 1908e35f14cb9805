"""HTTP service for leopard re-identification: a thin FastAPI layer over `reid.identify.Pipeline`.

`service.app.create_app()` is the app factory (`uvicorn service.app:create_app --factory`);
the library never imports this package (DESIGN.md: the service imports the library only).
"""
