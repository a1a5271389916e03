"""Who is asking, as CoBrHa knows them: a provider with a valid VISA, or an active organisation.

Shared by the business services: each one decides what the requester may do; here we only check
that CoBrHa knows the requester as the certificate says.
"""

from __future__ import annotations

import datetime as dt

from mycarenet_ic.domain.qualities import CallerIdentity
from mycarenet_ic.domain.records import Organisation, Profession
from mycarenet_ic.errors import AccessDenied
from mycarenet_ic.services.ports import Cobrha


def check_claimed_person(identity: CallerIdentity, claimed_ssin: str | None) -> None:
    """A CommonInput may name the caller, never another person than the certificate's holder."""
    if claimed_ssin and claimed_ssin != identity.ssin:
        raise AccessDenied("The CommonInput names another person than the certificate.")


def checked_profession(cobrha: Cobrha, identity: CallerIdentity, today: dt.date) -> Profession:
    """The profession behind the certificate's NIHII, if CoBrHa knows it with a VISA valid today.

    CoBrHa decides what the holder is: the certificate's quality must be the profession CoBrHa records
    for that NIHII (a certificate for a nurse's NIHII that says "doctor" does not make a doctor)."""
    pro = cobrha.professional(nihii=identity.nihii) if identity.nihii else None
    profession = None
    if pro is not None and (identity.ssin is None or pro.ssin == identity.ssin):
        profession = next((p for p in pro.professions
                           if p.nihii == identity.nihii and p.code == identity.quality.hcparty_code), None)
    if profession is None or not profession.visa_valid_on(today):
        raise AccessDenied("The care provider is not known in CoBrHa with a valid VISA.")
    return profession


def active_organisation(cobrha: Cobrha, nihii: str | None, kind: str, today: dt.date,
                        what: str = "organisation") -> Organisation:
    """The organisation ``nihii`` of type ``kind``, if CoBrHa knows it and it is active today."""
    org = cobrha.organisation(nihii=nihii) if nihii else None
    if org is None or org.type != kind or not org.active_on(today):
        raise AccessDenied(f"The {what} is not known and active in CoBrHa.")
    return org
