"""Namespace URIs (and the few other URIs the wire names) used across the layer, in one place."""

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"
XML = "http://www.w3.org/XML/1998/namespace"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

# Algorithms (the only ones accepted).
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

# WS-Security token profile.
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64_BINARY = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

# eHealth error types.
EHEALTH_ERRORS_SOA = "urn:be:fgov:ehealth:errors:soa:v1"

# eHealth 2.0 status codes (values, not namespaces): found, and the success that found nothing.
EHEALTH_STATUS_SUCCESS = "urn:be:fgov:ehealth:2.0:status:Success"
EHEALTH_STATUS_NOT_FOUND = "urn:be:fgov:ehealth:2.0:status:Success:NotFound"

# Integrated Care (ours, in the MyCareNet style): the service, and the files exported to the insurers.
INTEGRATED_CARE = "urn:be:fgov:ehealth:mycarenet:integratedcare:protocol:v1"
INTEGRATED_CARE_EXPORT = "urn:be:fgov:ehealth:mycarenet:integratedcare:export:v1"

# MyCareNet commons, one core and one protocol namespace per version (v2 Tarification, v3 MemberData).
COMMONS_CORE_PREFIX = "urn:be:fgov:ehealth:mycarenet:commons:core:v"
COMMONS_PROTOCOL_PREFIX = "urn:be:fgov:ehealth:mycarenet:commons:protocol:v"


def commons_core(version: int) -> str:
    return f"{COMMONS_CORE_PREFIX}{version}"


def commons_protocol(version: int) -> str:
    return f"{COMMONS_PROTOCOL_PREFIX}{version}"


# SAML 2.0 and the CIN's MemberData extension of it.
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML2_ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion"
MEMBERDATA_EXTENSION = "urn:be:cin:nippin:memberdata:saml:extension"

# eHealth message services (Tarification, Mediprima) and KMEHR.
MESSAGESERVICES_PROTOCOL = "http://www.ehealth.fgov.be/messageservices/protocol/v1"
MESSAGESERVICES_CORE = "http://www.ehealth.fgov.be/messageservices/core/v1"
KMEHR = "http://www.ehealth.fgov.be/standards/kmehr/schema/v1"

# The simulated eHealth services (stubs/), ours: AttributeAuthority, CoBrHa, National Register.
SANDBOX_ATTRIBUTE_AUTHORITY = "urn:be:fgov:ehealth:sandbox:attributeauthority:v1"
SANDBOX_COBRHA = "urn:be:fgov:ehealth:sandbox:addressbook:v1"
SANDBOX_NATIONAL_REGISTER = "urn:be:fgov:ehealth:sandbox:rn:v1"
SANDBOX_CODING = "urn:be:fgov:ehealth:sandbox:coding:v1"  # the intermediary's second coding (seed 003)

# WSDL 1.1 and its SOAP 1.1 binding; XML Schema; the SOAP 1.1 "next" actor.
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP_HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
XS = "http://www.w3.org/2001/XMLSchema"
SOAP11_NEXT_ACTOR = "http://schemas.xmlsoap.org/soap/actor/next"

# SAML 1.1 (the eHealth STS's tokens) and the WS-Security SAML token profile that carries them.
SAML11_ASSERTION = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML11_PROTOCOL = "urn:oasis:names:tc:SAML:1.0:protocol"
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
SAML_ASSERTION_ID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
SAML_V11_TOKEN = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"  # noqa: S105 - a URI

# The eHealth SAML 1.1 Token Service (the STS stub has its names).
STS_PROTOCOL = "urn:be:fgov:ehealth:sts:protocol:v1"
