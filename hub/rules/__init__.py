"""Pure rule evaluation: readings in, alarm signals out; time and state come in as arguments."""
