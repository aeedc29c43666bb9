"""PostgreSQL/TimescaleDB storage: the only importer of psycopg; SQL migrations live here."""
