"""Namespace URIs used across the layer, in one place."""

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
EHEALTH_ERRORS_CORE = "urn:be:fgov:ehealth:errors:core:v1"

# Stub services.
THERLINK = "urn:be:fgov:ehealth:therlink:protocol:v1"
ADDRESSBOOK = "urn:be:fgov:ehealth:addressbook:protocol:v1"
RN_PERSON = "urn:be:fgov:ehealth:rn:personservice:protocol:v1"
