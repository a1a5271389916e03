"""The package layout (the rest of the metadata is in setup.cfg).

The repository keeps its stubs and its contract at the top (``stubs/``, ``wsdl/``, ``xsd/``); an install
puts them under the project's own name, so that nothing named ``stubs`` lands in site-packages:
``stubs/`` becomes the subpackage ``mycarenet_ic.stubs``, ``wsdl/`` and ``xsd/`` the package data
``mycarenet_ic/wsdl`` and ``mycarenet_ic/xsd`` (found there by ``mycarenet_ic.contract``).
"""

from setuptools import find_packages, setup

CONTRACT = {"mycarenet_ic.wsdl": "wsdl", "mycarenet_ic.xsd": "xsd"}  # data only: no Python in them

setup(
    packages=[*find_packages(include=["mycarenet_ic", "mycarenet_ic.*"]), "mycarenet_ic.stubs", *CONTRACT],
    package_dir={"mycarenet_ic.stubs": "stubs", **CONTRACT},
)
