"""SOAP binding: the only package that imports spyne."""
