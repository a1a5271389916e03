"""The conformance kit: the acceptance scenarios of each service (:mod:`.catalogue`), a report of which ones a
caller's recorded traffic exercises and how its requests depart from the official contract's shape
(:mod:`.report`, :mod:`.deviations`), and the catalogue played as a client against any endpoint speaking these
contracts (:mod:`.runner`). Command line: ``mycarenet-ic conformance plan|report|run`` (:mod:`.cli`)."""
