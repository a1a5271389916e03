"""A local MyCareNet in a box: signed SOAP services and eHealth stubs."""

__version__ = "0.1.0"
