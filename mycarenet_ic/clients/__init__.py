"""zeep gateways to the eHealth services (the stubs here): the only package that imports zeep."""
