"""Synthetic city of lamps, cabinets, muck trucks, manhole covers and parking spots for the hub."""
