"""Commands of `python -m hub` beyond the entry point: access, calendar, the local stack."""
