"""The README's MemberData request (issue 18 item 4): the values it says a request needs are the ones the
verifier checks (the SubjectConfirmation method, the Issuer format, the extension namespace, the SOAP action),
and its example AttributeQuery is one the verifier reads — also after each required value is taken away,
which the verifier then refuses with the code the README's table names."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.domain.assurability import AssurabilityError
from mycarenet_ic.soap import nippin
from mycarenet_ic.soap.endpoint import soap_actions
from mycarenet_ic.soap.memberdata import read_query

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("**Every value a request needs**")
    return text[start:text.index("\n## ", start)]


def example() -> etree._Element:
    found = re.search(r"```xml\n(.*?)```", section(), re.S)
    assert found, "README: no ```xml AttributeQuery after 'Every value a request needs'"
    return etree.fromstring(found.group(1).replace("…", "").encode())


def test_the_readme_states_the_values_the_verifier_checks() -> None:
    text = section()
    action = soap_actions(ROOT / "wsdl" / "mycarenet-memberdata-v1.wsdl")
    for value in (nippin.CONFIRMATION_METHOD, nippin.ISSUER_FORMAT, ns.MEMBERDATA_EXTENSION, *action.values()):
        assert f"`{value}`" in text or f'"{value}"' in text, value


def test_the_readme_example_is_read_by_the_verifier() -> None:
    query, name_id = read_query(example())
    assert (query.issuer_nihii, name_id.value) == ("11200035003", "48031202166")
    assert [f.id for f in query.facets] == ["urn:be:cin:nippin:insurability"] and query.start < query.end


@pytest.mark.parametrize(("path", "attribute", "code"), [
    (f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation", "Method", "INVALID_SUBJECT_CONFIRMATION_METHOD_VALUE"),
    (f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation", None, "MISSING_SUBJECT_CONFIRMATION_TAG"),
    (f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation/{{{SAML}}}SubjectConfirmationData", "NotBefore",
     "EMPTY_STARTDATE"),
    (f"{{{SAML}}}Issuer", "Format", "MISSING_ISSUER_FORMAT"),
    (f"{{{SAML}}}Subject/{{{SAML}}}NameID", "Format", "MISSING_NAMEID_FORMAT"),
])
def test_each_required_value_taken_away_is_refused_as_the_readme_says(path: str, attribute: str | None,
                                                                      code: str) -> None:
    assert f"`{code}`" in section()
    root = copy.deepcopy(example())
    element = root.find(path)
    assert element is not None
    if attribute is None:
        element.getparent().remove(element)
    else:
        del element.attrib[attribute]
    with pytest.raises(AssurabilityError) as refused:
        read_query(root)
    assert refused.value.code == code
