"""Sample requests and answers per service and acceptance scenario (``samples/``), and what is built from them."""
