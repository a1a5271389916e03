"""Pure domain rules: no framework, no I/O, stdlib only."""
