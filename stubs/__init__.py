"""Simulated eHealth services (AttributeAuthority, CoBrHa, National Register) and their scenario data."""
