"""Pure 数字城管 case logic: classification, routing, workflow, deadlines and evaluation."""
