"""The WS-SecurityPolicy a served WSDL states: which tokens the endpoint takes, from its configuration.

The official MyCareNet WSDLs (MemberData v1, Tarification v1) define one ``wsp:Policy wsu:Id="SAML_HOK"``
(WS-Policy 2004/09, WS-SecurityPolicy 1.2): an asymmetric binding whose initiator token is an STS SAML 1.1
assertion (``sp:SamlToken`` / ``sp:WssSamlV11Token10``, always sent to the recipient), a timestamp, whole
headers and Body signed, the Body a signed part; each operation's input names it with ``wsp:PolicyReference``.
The sandbox states the same for a holder-of-key token, an X.509 policy for its simple mode (a
``BinarySecurityToken``), or an ``ExactlyOne`` of both, as the endpoint's :class:`Verifier` accepts.

Where the sandbox says what it enforces rather than what the official text says: ``sp:Basic256Sha256`` (it
accepts RSA-SHA256 and SHA-256 only; the official WSDLs say ``Basic256``, while the public clients sign
RSA-SHA256), no ``sp:ProtectTokens`` (a signature may cover the token but need not), and the answers'
token ``AlwaysToInitiator`` (answers carry the service's ``BinarySecurityToken``).
"""

from __future__ import annotations

from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.security.wssec import TokenKind

WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
SP = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
_INCLUDE = f"{SP}/IncludeToken/"
_NSMAP = {"wsp": WSP, "sp": SP, "wsu": ns.WSU}
# The policy's wsu:Id for each kind (the official name for the holder-of-key one), and for both.
POLICY_IDS = {TokenKind.SAML_HOK: "SAML_HOK", TokenKind.X509: "X509"}
EITHER_ID = "SAML_HOK_OR_X509"


def _sp(parent: etree._Element, name: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{SP}}}{name}", {f"{{{SP}}}{k}": v for k, v in attrs.items()})


def _nested(parent: etree._Element) -> etree._Element:
    return etree.SubElement(parent, f"{{{WSP}}}Policy")


def _token(parent: etree._Element, name: str, include: str, profile: str) -> None:
    _sp(_nested(_sp(_nested(parent), name, IncludeToken=_INCLUDE + include)), profile)


def token_policy(kind: TokenKind) -> etree._Element:
    """The policy of one token kind, with its ``wsu:Id``."""
    policy = etree.Element(f"{{{WSP}}}Policy", {f"{{{ns.WSU}}}Id": POLICY_IDS[kind]}, nsmap=_NSMAP)
    binding = _nested(_sp(policy, "AsymmetricBinding"))
    if kind is TokenKind.SAML_HOK:  # the eHealth STS assertion; its holder-of-key signs
        _token(_sp(binding, "InitiatorToken"), "SamlToken", "AlwaysToRecipient", "WssSamlV11Token10")
    else:  # the signer's own certificate in a BinarySecurityToken
        _token(_sp(binding, "InitiatorToken"), "X509Token", "AlwaysToRecipient", "WssX509V3Token10")
    _token(_sp(binding, "RecipientToken"), "X509Token", "AlwaysToInitiator", "WssX509V3Token10")
    _sp(_nested(_sp(binding, "AlgorithmSuite")), "Basic256Sha256")
    _sp(_nested(_sp(binding, "Layout")), "Lax")
    _sp(binding, "IncludeTimestamp")
    _sp(binding, "OnlySignEntireHeadersAndBody")
    if kind is TokenKind.SAML_HOK:  # the signature names the assertion by a SAMLAssertionID KeyIdentifier
        _sp(_nested(_sp(policy, "Wss10")), "MustSupportRefKeyIdentifier")
    _sp(_sp(policy, "SignedParts"), "Body")
    return policy


def add_token_policy(wsdl: etree._ElementTree, accepted: frozenset[TokenKind]) -> str:
    """Put the policy of ``accepted`` into ``wsdl`` (after its documentation, as the official WSDLs have it)
    and reference it from every binding operation's input; returns the referenced policy's Id."""
    root = wsdl.getroot()
    kinds = [kind for kind in (TokenKind.SAML_HOK, TokenKind.X509) if kind in accepted]
    if not kinds:
        raise ValueError("an endpoint that accepts no token kind has no policy")
    policies = [token_policy(kind) for kind in kinds]
    if len(kinds) == 1:
        referenced = POLICY_IDS[kinds[0]]
    else:
        referenced = EITHER_ID
        either = etree.Element(f"{{{WSP}}}Policy", {f"{{{ns.WSU}}}Id": EITHER_ID}, nsmap=_NSMAP)
        one = etree.SubElement(either, f"{{{WSP}}}ExactlyOne")
        for kind in kinds:
            etree.SubElement(one, f"{{{WSP}}}PolicyReference", URI=f"#{POLICY_IDS[kind]}")
        policies.append(either)
    elements = [child for child in root if isinstance(child.tag, str)]
    if elements and elements[0].tag == f"{{{ns.WSDL}}}documentation":
        at = root.index(elements[0]) + 1
    else:
        at = root.index(elements[0]) if elements else len(root)
    note = etree.Comment(" Served by the sandbox: the WS-SecurityPolicy of the tokens this endpoint accepts "
                         "(MYCARENET_TOKENS for the business services). Basic256Sha256: RSA-SHA256 and SHA-256 "
                         "only. The signature covers the Body and the Timestamp (and may cover the token). ")
    for offset, node in enumerate([note, *policies]):
        if isinstance(node.tag, str):
            etree.indent(node, space="  ", level=1)
        node.tail = "\n  "
        root.insert(at + offset, node)
    for message in root.iterfind(f"{{{ns.WSDL}}}binding/{{{ns.WSDL}}}operation/{{{ns.WSDL}}}input"):
        etree.SubElement(message, f"{{{WSP}}}PolicyReference", URI=f"#{referenced}", nsmap={"wsp": WSP})
    return referenced
