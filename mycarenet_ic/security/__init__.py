"""Hardened parsing, WS-Security signing and verification, trust store, sandbox PKI."""
