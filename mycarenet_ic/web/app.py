"""The "Integrated Care" web application (seed 000 §10–§13): the same use cases as the SOAP service.

It translates and decides nothing: a form becomes a :class:`~mycarenet_ic.services.integrated_care.Declaration`,
a :class:`Modification`, a consultation or a page of the coordinator's list, asked of
:class:`~mycarenet_ic.services.integrated_care.IntegratedCare` for the identity the IdP vouched for; its
answer or its refusal becomes a page. Every action is audited (service ``web``), every sign-in (``idp``).

Server-rendered HTML that works without JavaScript; every form carries a CSRF token; every page is
``Cache-Control: no-store`` (after logout, the back button shows nothing).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from babel.dates import format_date
from flask import Flask, Response, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from mycarenet_ic.domain.identifiers import is_valid_niss
from mycarenet_ic.domain.inclusions import MODIFIABLE, Consent, Field, Inclusion, Role, Status
from mycarenet_ic.errors import (
    AccessDenied,
    BusinessRuleViolation,
    InvalidIdentifierError,
    MycarenetError,
    NotFound,
    ServerError,
)
from mycarenet_ic.services.integrated_care import Consultation, Declaration, IntegratedCare, Modification
from mycarenet_ic.services.ports import AuditEntry, AuditLog, Cobrha
from mycarenet_ic.services.requesters import Requester
from mycarenet_ic.web import i18n
from mycarenet_ic.web.i18n import N_
from mycarenet_ic.web.idp import IdentityProvider, Profile, SignInRefused, TotpSecrets
from mycarenet_ic.web.sessions import COOKIE, Session, SessionStore

SERVICE = "web"
PAGE_SIZE = 10
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
T = TypeVar("T")

# What a refusal says, per error (the use case's own words are for the audit: they are English).
REFUSALS: dict[type[MycarenetError], tuple[int, str]] = {
    NotFound: (404, N_("No inclusion was found for this patient.")),
    AccessDenied: (403, N_("You may not do this for this patient or this project.")),
    InvalidIdentifierError: (400, N_("This NISS or NIHII is not valid: please check its digits.")),
    ServerError: (503, N_("A service Integrated Care depends on does not answer now. Please try again in a moment.")),
}
RULES = {
    "ALREADY_INCLUDED": N_("The patient is already included in this project for an overlapping period."),
    "PRINCIPAL_EXISTS": N_("The patient already has a principal inclusion in another project for this period: "
                           "declare this one as information."),
    "CONSENT_INCOMPLETE": N_("Give the patient's consent (agree or refuse) and the date it was registered."),
    "CONSENT_DATE_IN_FUTURE": N_("The date of the consent cannot be in the future."),
    "END_BEFORE_START": N_("The end date cannot come before the start date."),
    "PATIENT_DECEASED": N_("The patient has died: the inclusion cannot run past the date of death."),
    "PROJECT_STOPPED": N_("The integrated-care project has stopped: the inclusion cannot run past its end."),
    "UNKNOWN_PROJECT": N_("This integrated-care project is not known or not active."),
    "SSIN_REPLACED": N_("This NISS was replaced: use the patient's current NISS."),
    "NOTHING_TO_CHANGE": N_("The form changes nothing."),
}
BAD_FORM = N_("A field of the form is missing or not valid (dates are written YYYY-MM-DD).")
BAD_TOKEN = N_("This form has expired or was not sent from this site. Nothing was changed; please try again.")
SIGNIN_REFUSED = N_("The sign-in failed: check your NISS, the code of your authenticator app and the profile.")
SIGNIN_THROTTLED = N_("Too many failed sign-ins. Please wait a few minutes before trying again.")
PROFILE_NAMES = {Profile.CITIZEN: N_("Citizen (patient)"), Profile.PROVIDER: N_("Care provider"),
                 Profile.PHARMACIST: N_("Pharmacist"), Profile.PSI_STAFF: N_("Integrated-care project staff")}


_OWN_PATH = re.compile(r"/[A-Za-z0-9/_.-]*")


def own_path(target: str, under: str = "/") -> bool:
    """Whether ``target`` is one of this application's own paths under ``under`` (a path of the application,
    without its mount): no scheme, no host, no ``//``, no backslash, tab nor line break (browsers drop tabs and
    line breaks from a URL, so "/<TAB>/elsewhere" would become "//elsewhere", another site), no ``.`` or ``..``
    segment (the browser would resolve it to somewhere outside ``under``)."""
    return (_OWN_PATH.fullmatch(target) is not None and not target.startswith("//") and target.startswith(under)
            and not {".", ".."} & set(target.split("/")))


class Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def refusal_of(exc: MycarenetError) -> Refusal:
    if isinstance(exc, BusinessRuleViolation):
        return Refusal(422, RULES.get(exc.code, N_("The request breaks a rule of Integrated Care.")))
    for kind, (status, message) in REFUSALS.items():
        if isinstance(exc, kind):
            return Refusal(status, message)
    return Refusal(400, N_("The request could not be handled."))


@dataclass
class WebApp:
    """What the routes share: the use cases, the IdP, the sessions, the audit."""

    ic: IntegratedCare
    idp: IdentityProvider
    cobrha: Cobrha
    audit: AuditLog
    sessions: SessionStore
    page_size: int = PAGE_SIZE

    def run(self, session: Session, operation: str, patient: str | None, action: Callable[[], T],
            detail: Callable[[T], str], request_id: str | None = None) -> T:
        """``action`` for the signed-in person, audited; a refusal becomes a :class:`Refusal`."""
        assert session.identity is not None
        entry = AuditEntry(SERVICE, operation, caller=self.audit.caller_label(session.identity),
                           patient=patient if patient and is_valid_niss(patient) else None, request_id=request_id)
        try:
            result = action()
        except MycarenetError as exc:
            entry.outcome, entry.detail = exc.audit_outcome, f"{exc.code}: {exc.reason}"
            self.audit.append(entry)
            raise refusal_of(exc) from None
        except Exception:
            entry.outcome, entry.detail = "ERROR", "unexpected error"
            self.audit.append(entry)
            raise
        entry.detail = detail(result)
        self.audit.append(entry)
        return result

    def requester(self, session: Session) -> Requester:
        assert session.identity is not None
        return Requester(session.identity, audit_label=self.audit.caller_label(session.identity),
                         acting_as=Profile(session.profile).roles if session.profile else frozenset())

    def project_name(self, nihii: str) -> str:
        try:
            org = self.cobrha.organisation(nihii=nihii)
        except MycarenetError:
            return nihii
        return org.name if org is not None else nihii


def _roles(session: Session) -> dict[Role, frozenset[str]]:
    """The roles of the signed-in person as the pages show them (which forms to offer; the use case decides)."""
    profile = Profile(session.profile) if session.profile else None
    if profile is Profile.CITIZEN:
        return {Role.PATIENT: frozenset()}
    if profile is Profile.PROVIDER:
        return {Role.PROVIDER: frozenset()}
    if profile is Profile.PHARMACIST:
        return {Role.PHARMACIST: frozenset()}
    staff = {Role.PSI_ADMINISTRATIVE: "administrative", Role.PSI_COORDINATOR: "coordinator"}
    return {role: frozenset(p for r, p in session.staff_roles if r == name) for role, name in staff.items()
            if any(r == name for r, _p in session.staff_roles)}


def _editable(roles: dict[Role, frozenset[str]], inclusion: Inclusion) -> frozenset[Field]:
    fields: set[Field] = set()
    for role, projects in roles.items():
        if role in (Role.PSI_ADMINISTRATIVE, Role.PSI_COORDINATOR) and inclusion.project not in projects:
            continue
        fields |= MODIFIABLE[role]
    return frozenset(fields)


def _date(raw: str | None) -> dt.date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise Refusal(400, BAD_FORM) from None


def _missing() -> dt.date:
    raise Refusal(400, BAD_FORM)


def _choice(kind: type[Any], raw: str | None, required: bool = False) -> Any:
    raw = (raw or "").strip()
    if not raw:
        if required:
            raise Refusal(400, BAD_FORM)
        return None
    try:
        return kind(raw)
    except ValueError:
        raise Refusal(400, BAD_FORM) from None


def _request_id() -> str:
    raw = request.form.get("request_id", "")
    if not _REQUEST_ID.match(raw):
        raise Refusal(400, BAD_FORM)
    return raw


def create_app(platform: Any, gateways: Any, integrated_care: IntegratedCare | None = None, *,
               page_size: int = PAGE_SIZE, idle_seconds: float = 900.0,
               sessions: SessionStore | None = None) -> Flask:
    """The web application of one platform (:class:`mycarenet_ic.app.Platform`) and its gateways."""
    ic = integrated_care or platform.integrated_care(gateways)
    idp = IdentityProvider(TotpSecrets(platform.settings.data_dir, platform.pseudonymiser), gateways.cobrha,
                           gateways.attribute_authority, gateways.national_register, platform.audit, platform.engine,
                           platform.replay)
    web = WebApp(ic, idp, gateways.cobrha, platform.audit,
                 sessions or SessionStore(platform.engine, platform.sealer, idle_seconds), page_size)
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, TEMPLATES_AUTO_RELOAD=False)
    app.extensions["mycarenet-web"] = web
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: i18n.translations(g.lang).gettext(message),
        lambda singular, plural, n: i18n.translations(g.lang).ngettext(singular, plural, n), newstyle=True)
    _routes(app, web)
    from mycarenet_ic.web import inspector_pages, premium_pages  # the operator's inspector, the nurse's premium

    inspector_pages.register(app, platform, idle_seconds)
    premium_pages.register(app, platform)
    return app


def _routes(app: Flask, web: WebApp) -> None:  # noqa: C901 - the routes of one small application
    def tr(message: str) -> str:
        return i18n.translations(g.lang).gettext(message)

    @app.template_filter("profile")
    def profile_of(value: str) -> Profile:
        return Profile(value)

    @app.template_filter("status")
    def status_name(value: str) -> str:
        return {"principal": N_("Principal"), "information": N_("Information")}.get(value, value)

    @app.template_filter("consent")
    def consent_name(value: str) -> str:
        return {"agree": N_("Agrees"), "refuse": N_("Refuses")}.get(value, value)

    @app.template_filter("closure")
    def closure_name(value: str) -> str:
        return {"death": N_("closed at the death"), "project-stopped": N_("closed: the project stopped")}.get(
            value, value)

    @app.template_filter("day")
    def day(value: dt.date | None) -> str:
        return format_date(value, format="long", locale=g.lang) if value else "—"

    @app.context_processor
    def shared() -> dict[str, Any]:
        return {"lang": g.lang, "languages": i18n.LANGUAGE_NAMES, "session": g.session,
                "signed_in": g.session is not None and g.session.identity is not None,
                "profile_names": PROFILE_NAMES, "new_request_id": lambda: secrets.token_urlsafe(24),
                "today": dt.date.today().isoformat(), "tr": tr, "notices": notices()}

    def notices() -> list[str]:
        if g.session is None:
            return []
        shown = list(g.session.messages)
        g.session.messages.clear()
        return shown

    @app.before_request
    def before() -> Response | None:
        chosen = request.cookies.get("lang")
        g.lang = chosen if chosen in i18n.LANGUAGES else (
            request.accept_languages.best_match(i18n.LANGUAGES) or i18n.DEFAULT)
        g.session = web.sessions.get(request.cookies.get(COOKIE))
        g.set_cookie = None
        if request.method == "POST":
            token = request.form.get("csrf")
            if g.session is None or not g.session.csrf_ok(token):
                caller = (web.audit.caller_label(g.session.identity)
                          if g.session is not None and g.session.identity is not None else "unknown")
                web.audit.append(AuditEntry(SERVICE, f"POST {request.path}"[:128], caller=caller, outcome="DENIED",
                                            detail="CSRF: the form's token is missing or wrong"))
                return page("message.html", 403, error=BAD_TOKEN)
        return None

    @app.after_request
    def after(resp: Response) -> Response:
        if g.get("session") is not None:
            web.sessions.save(g.session)   # what the request changed in it (the patient, the notices)
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Pragma"] = "no-cache"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                                   "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        if g.get("set_cookie") is not None:
            resp.set_cookie(COOKIE, g.set_cookie, secure=request.is_secure, httponly=True, samesite="Strict",
                            path=own_root())
        elif g.get("clear_cookie"):
            resp.delete_cookie(COOKIE, path=own_root(), secure=request.is_secure, httponly=True, samesite="Strict")
        return resp

    def own_root() -> str:
        """Where this application is mounted ("/web/" in the sandbox): its cookies' Path, nothing wider."""
        return request.script_root + "/"

    def page(template: str, status: int = 200, **values: Any) -> Response:
        return Response(render_template(template, **values), status, mimetype="text/html")

    def signed_in() -> Session:
        if g.session is None or g.session.identity is None:
            raise NeedSignIn()
        return g.session

    class NeedSignIn(Exception):
        pass

    @app.errorhandler(NeedSignIn)
    def need_sign_in(_exc: NeedSignIn) -> Response:
        return redirect(url_for("sign_in_form"))  # type: ignore[return-value]

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return page("message.html", exc.code or 500, error=N_("This page does not exist or cannot be used so."))

    @app.errorhandler(Exception)
    def unexpected(_exc: Exception) -> Response:
        app.logger.exception("web: unexpected error")
        return page("message.html", 500, error=N_("Something went wrong on our side. Nothing more is known here; "
                                                  "please try again later."))

    # -- public pages ----------------------------------------------------------------------------------
    @app.get("/health")
    def health() -> Response:
        return Response("ok", mimetype="text/plain")

    @app.get("/")
    def index() -> Response:
        ok = g.session is not None and g.session.identity is not None
        return redirect(url_for("home" if ok else "sign_in_form"))  # type: ignore[return-value]

    @app.get("/language/<language>")
    def language(language: str) -> Response:
        target = request.args.get("next", "/")
        if not own_path(target):  # back to one of this application's own paths, nothing else
            target = "/"
        resp = redirect(request.script_root + target)  # the path is the application's: under its mount
        if language in i18n.LANGUAGES:
            resp.set_cookie("lang", language, secure=request.is_secure, httponly=True, samesite="Lax",
                            path=own_root(),
                            max_age=365 * 86400)
        return resp  # type: ignore[return-value]

    @app.get("/signin")
    def sign_in_form() -> Response:
        if g.session is None:
            g.session = web.sessions.new()
            g.set_cookie = g.session.id
        return page("signin.html", profiles=list(Profile))

    @app.post("/signin")
    def sign_in() -> Response:
        assert g.session is not None
        try:
            profile = Profile(request.form.get("profile", ""))
        except ValueError:
            return page("signin.html", 400, profiles=list(Profile), error=SIGNIN_REFUSED)
        try:
            identity = web.idp.sign_in(request.form.get("ssin", ""), request.form.get("code", ""), profile,
                                       request.remote_addr or "?")
        except SignInRefused as exc:
            return page("signin.html", 429 if exc.throttled else 401, profiles=list(Profile),
                        error=SIGNIN_THROTTLED if exc.throttled else SIGNIN_REFUSED)
        except ServerError as exc:
            return page("signin.html", refusal_of(exc).status, profiles=list(Profile), error=refusal_of(exc).message)
        session = web.sessions.signed_in(g.session, identity, profile.value)
        if profile is Profile.PSI_STAFF and identity.ssin:
            session.staff_roles = tuple((r.role, r.organisation_nihii) for r in web.idp.aa.roles(identity.ssin))
        g.session, g.set_cookie = session, session.id
        return redirect(url_for("home"))  # type: ignore[return-value]

    @app.post("/logout")
    def logout() -> Response:
        if g.session is not None:
            if g.session.identity is not None:
                web.audit.append(AuditEntry("idp", "SignOut", caller=web.audit.caller_label(g.session.identity)))
            web.sessions.end(g.session.id)
        g.session, g.clear_cookie = None, True
        return page("message.html", notice=N_("You are signed out."))

    # -- signed in -------------------------------------------------------------------------------------
    @app.get("/home")
    def home() -> Response:
        session = signed_in()
        roles = _roles(session)
        if Role.PATIENT in roles:
            return own_file(session)
        return page("home.html", roles=roles, Role=Role, project_name=web.project_name)

    def own_file(session: Session, status: int = 200, error: str | None = None, notice: str | None = None) -> Response:
        assert session.identity is not None and session.identity.ssin
        ssin = session.identity.ssin
        found: Consultation | None = None
        try:
            found = web.run(session, "ConsultOwn", ssin, lambda: web.ic.consult(web.requester(session), ssin),
                            lambda c: c.audit_detail)
        except Refusal as exc:
            if exc.status != 404:
                error, status = exc.message, exc.status
        return page("patient.html", status, found=found, roles=_roles(session), editable=_editable,
                    project_name=web.project_name, own=True, error=error, notice=notice, Field=Field)

    @app.post("/consult")
    def consult_form() -> Response:
        session = signed_in()
        session.patient = request.form.get("ssin", "").strip().replace(".", "").replace("-", "").replace(" ", "")
        return redirect(url_for("patient"))  # type: ignore[return-value]

    @app.get("/patient")
    def patient(status: int = 200, error: str | None = None, notice: str | None = None) -> Response:
        session = signed_in()
        roles = _roles(session)
        if Role.PATIENT in roles:
            return own_file(session, status, error, notice)
        ssin = session.patient
        if not ssin:
            return redirect(url_for("home"))  # type: ignore[return-value]
        try:
            found = web.run(session, "Consult", ssin, lambda: web.ic.consult(web.requester(session), ssin),
                            lambda c: c.audit_detail)
        except Refusal as exc:
            return page("home.html", exc.status, roles=roles, Role=Role, project_name=web.project_name,
                        error=exc.message)
        return page("patient.html", status, found=found, roles=roles, editable=_editable,
                    project_name=web.project_name, own=False, error=error, notice=notice, Field=Field)

    @app.get("/declare")
    def declare_form() -> Response:
        session = signed_in()
        return page("declare.html", roles=_roles(session), Role=Role, project_name=web.project_name,
                    form=request.form)

    @app.post("/declare")
    def declare() -> Response:
        session = signed_in()
        form = request.form
        ssin = form.get("ssin", "").strip()
        try:
            cmd = Declaration(ssin, form.get("project", "").strip(), _choice(Status, form.get("status"), True),
                              _date(form.get("start")) or _missing(), _choice(Consent, form.get("consent")),
                              _date(form.get("consent_date")))
            rid = _request_id()
            outcome = web.run(session, "Declare", ssin, lambda: web.ic.declare(web.requester(session), rid, cmd),
                              lambda o: f"inclusion={o.inclusion.id} project={o.inclusion.project}"
                              + (" (retry: first answer)" if o.replayed else ""), rid)
        except Refusal as exc:
            return page("declare.html", exc.status, roles=_roles(session), Role=Role, project_name=web.project_name,
                        form=form, error=exc.message)
        session.patient = ssin
        session.messages.append(N_("The inclusion is declared."))
        del outcome
        return redirect(url_for("patient"))  # type: ignore[return-value]

    @app.post("/modify")
    def modify() -> Response:
        session = signed_in()
        form = request.form
        own = session.identity is not None and Role.PATIENT in _roles(session)
        ssin = (session.identity.ssin if own and session.identity else session.patient) or ""
        try:
            cmd = Modification(ssin, form.get("inclusion", "").strip(), _choice(Status, form.get("status")),
                               _date(form.get("start")), _date(form.get("end")), _choice(Consent, form.get("consent")),
                               _date(form.get("consent_date")))
            rid = _request_id()
            web.run(session, "Modify", ssin, lambda: web.ic.modify(web.requester(session), rid, cmd),
                    lambda o: f"inclusion={o.inclusion.id} v{o.inclusion.version}"
                    + (" (retry: first answer)" if o.replayed else ""), rid)
        except Refusal as exc:
            return patient(exc.status, exc.message)
        session.messages.append(N_("The change is saved."))
        return redirect(url_for("patient"))  # type: ignore[return-value]

    @app.get("/projects/<project>")
    def project_patients(project: str) -> Response:
        session = signed_in()
        try:
            number = min(max(1, int(request.args.get("page", "1"))), 1_000_000)
        except ValueError:
            number = 1
        offset = (number - 1) * web.page_size
        try:
            found = web.run(session, "ListProjectPatients", None,
                            lambda: web.ic.list_patients(web.requester(session), project, offset, web.page_size),
                            lambda p: p.audit_detail)
        except Refusal as exc:
            return page("home.html", exc.status, roles=_roles(session), Role=Role, project_name=web.project_name,
                        error=exc.message)
        pages = max(1, -(-found.total // web.page_size))
        return page("projects.html", found=found, project=project, project_name=web.project_name,
                    number=number, pages=pages)
