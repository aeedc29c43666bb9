"""The HTTP API (FastAPI): the only importer of FastAPI; reads and writes through hub.store."""
