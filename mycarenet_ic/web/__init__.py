"""The "Integrated Care" web application on MyCareNet and the sandbox's eHealth IdP (seed 000 §10–§13)."""

from mycarenet_ic.web.app import create_app

__all__ = ["create_app"]
