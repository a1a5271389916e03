"""Fidelity: official-shape requests, and the answer shapes production gives, checked against schemas
written from the public contracts (tests/fidelity/xsd/), independent of the services' own xsd/."""
