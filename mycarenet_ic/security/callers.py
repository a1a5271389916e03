"""Who signed a verified message: the one place that decides, for both token kinds.

An X.509 BinarySecurityToken names its holder in its certificate (the sandbox's simple mode: the certificate
may say the quality; an eHealth-style one says only the NISS or the organisation); an STS holder-of-key token
names the holder by what the STS certified (``sts_attributes.identity_of``). Nothing is taken from the request.
"""

from __future__ import annotations

from mycarenet_ic.domain.qualities import CallerIdentity
from mycarenet_ic.errors import SecurityRejected
from mycarenet_ic.security.pki import identity_from_certificate
from mycarenet_ic.security.sts_attributes import identity_of
from mycarenet_ic.security.wssec import VerifiedMessage


def caller_of(verified: VerifiedMessage) -> CallerIdentity:
    if verified.token is not None:
        return identity_of(verified.token)
    try:
        return identity_from_certificate(verified.certificate)
    except ValueError:
        raise SecurityRejected("certificate names no known holder") from None
