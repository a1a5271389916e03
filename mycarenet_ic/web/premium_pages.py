"""The home nurse's page of the incentive premium (seed 002, issue 20 item 2): her own report for a year.

A care provider signed in through the IdP (profile "care provider": CoBrHa knows her with a valid VISA) sees
the report :class:`~mycarenet_ic.services.nurse_premium.NursePremium` makes for **her** NIHII, the one the IdP
vouched for (never one the page is given): the patient contacts, the theoretical FTE, the salaried FTE deducted,
the FTE due, the entitlement and the gross amount, each with the seed's rule behind it. The use case audits
each report as the nurse's (service ``premium``), as the command line's are the platform's.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal
from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request, url_for

from mycarenet_ic.domain.nurse_premium import DIABETES_EDUCATION_CODES, ROUNDS, Refusal
from mycarenet_ic.persistence.home_nursing import NoHomeNursingData, ScenarioHomeNursing
from mycarenet_ic.services.nurse_premium import NursePremium, PremiumError
from mycarenet_ic.services.ports import AuditLog
from mycarenet_ic.web.i18n import N_

NOT_A_PROVIDER = N_("The home-nurse premium is shown to care providers: sign in as a care provider.")
NO_ROUND = N_("Seed 002 sets no home-nurse premium for that year.")
NO_ACTIVITY = N_("No billed home nursing and no status are known for you for this premium.")
NO_DATA = N_("The premium's data cannot be read now. Please try again later.")
INDEPENDENT = {"main": N_("main activity"), "complementary": N_("complementary activity"),
               "none": N_("no independent activity")}
REFUSALS = {Refusal.NOT_INDEPENDENT: N_("not independent in the period (INASTI)"),
            Refusal.NO_ACCOUNT: N_("no bank account registered in the INAMI web application"),
            Refusal.ACCOUNT_TOO_LATE: N_("bank account registered after the deadline")}

bp = Blueprint("premium", __name__, url_prefix="/premium")


@dataclass(frozen=True)
class PremiumPages:
    data: ScenarioHomeNursing
    audit: AuditLog


def register(app: Flask, platform: Any) -> None:
    """The premium page on ``app`` (the web application of ``platform``), from its scenario's home nursing."""
    from mycarenet_ic.stubs.scenario import DEMO_FILE

    app.extensions["mycarenet-premium"] = PremiumPages(
        ScenarioHomeNursing(platform.settings.data_dir / "scenario.json", default=DEMO_FILE), platform.audit)
    app.register_blueprint(bp)


def _page(template: str, status: int = 200, **values: Any) -> Response:
    return Response(render_template(template, **values), status, mimetype="text/html")


def _fte(value: str) -> str:
    return format_decimal(Decimal(value), format="0.0000", locale=g.lang)


def _euros(value: str) -> str:
    return format_decimal(Decimal(value), format="#,##0.00", locale=g.lang)


@bp.get("/")
def report() -> Response:
    session = g.get("session")
    if session is None or session.identity is None:
        return redirect(url_for("sign_in_form"))  # type: ignore[return-value]
    identity = session.identity
    if session.profile != "provider" or not identity.nihii:
        return _page("premium.html", 403, error=NOT_A_PROVIDER, years=sorted(ROUNDS), year=None)
    try:
        year = int(request.args.get("year", max(ROUNDS)))
    except ValueError:
        year = 0
    if year not in ROUNDS:
        return _page("premium.html", 404, error=NO_ROUND, years=sorted(ROUNDS), year=None)
    pages: PremiumPages = current_app.extensions["mycarenet-premium"]
    try:
        found = NursePremium(pages.data, pages.audit, caller=pages.audit.caller_label(identity)).run(
            year, identity.nihii)
    except PremiumError:
        return _page("premium.html", 404, notice=NO_ACTIVITY, years=sorted(ROUNDS), year=year)
    except (NoHomeNursingData, ValueError, OSError):
        current_app.logger.exception("premium: the home-nursing data cannot be read")
        return _page("premium.html", 503, error=NO_DATA, years=sorted(ROUNDS), year=year)
    (provider,), (row,) = found.providers, found.rows()
    rules = found.rules
    return _page("premium.html", years=sorted(ROUNDS), year=year, p=provider, row=row, rules=rules,
                 nihii=identity.nihii, fte=_fte, euros=_euros, independent=INDEPENDENT[row["independent"]],
                 refusal=REFUSALS[provider.refusal] if provider.refusal else None,
                 codes=", ".join(sorted(DIABETES_EDUCATION_CODES)),
                 date=lambda d: format_date(d, format="long", locale=g.lang),
                 deadline=found.account_deadline, max_gross=_euros(str(rules.max_gross)))
