"""Use cases per operation family; they depend on the ports below, never on a framework."""
