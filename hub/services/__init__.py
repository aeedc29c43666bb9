"""The long-running pieces that wire the core to the edges; only the entry point imports them."""
