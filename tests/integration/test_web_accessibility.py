"""Accessibility of every page of the web application, the inspector and the nurse's premium (issue 15 item 3:
labels, keyboard, contrast; server-rendered, working without JavaScript), checked in headless Chromium on the
pages as served.

On each page: every visible form control has a label (or an accessible name), every button and link a name,
every form that posts its CSRF token; no script nor script handler anywhere; the page names its language and
has one ``main`` and one ``h1``; every visible text has the WCAG 2.1 AA contrast against the background it is
drawn on (4.5:1, 3:1 for large text); Tab from the top reaches every control (one stop per radio group) and
each shows a focus ring that stands out (3:1) from the page. A person signs in and changes a consent with the
keyboard alone; a refusal reads in French and Dutch too. The harness (one browser, the steps) is test_web's.
"""

from __future__ import annotations

import base64
import datetime as dt

import pyotp
import pytest

from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.stubs.admin import admin_token
from mycarenet_ic.web.i18n import translations
from tests import support
from tests.integration import test_web
from tests.integration.test_integrated_care import ADMIN_LEUVEN, COORD_LEUVEN, NOBODY_INCLUDED, A
from tests.integration.test_nurse_premium_cli import FONTAINE
from tests.integration.test_web import Web, web_of
from tests.integration.test_web_inspector import operator_sign_in
from tests.integration.test_web_premium import ssin_of

pytestmark = pytest.mark.integration
browser, web = test_web.browser, test_web.web   # test_web's harness: its fixtures, not copies

# Colours: CSS rgb()/rgba() parsed, composed over what is behind them, WCAG 2.1's relative luminance and contrast.
COLOUR = r"""
const parse = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return [0, 0, 0, 0];
  const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
const over = (top, below) => { const a = top[3];
  return [0, 1, 2].map(i => top[i] * a + below[i] * (1 - a)).concat([1]); };
const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
"""

# The page's problems, as a list of lines (empty: none). WCAG 2.1 1.4.3: 4.5:1, large text (24 px, or 18.66 px
# bold) 3:1.
AUDIT = COLOUR + r"""
const background = el => { const chain = []; for (let e = el; e; e = e.parentElement) chain.unshift(e);
  let bg = [255, 255, 255, 1]; for (const e of chain) bg = over(parse(getComputedStyle(e).backgroundColor), bg);
  return bg; };
const shown = el => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0 && s.visibility !== "hidden"; };
const name = el => (el.getAttribute("aria-label") || "").trim() || (el.getAttribute("aria-labelledby") || "")
  .split(" ").map(id => (document.getElementById(id) || {}).textContent || "").join("").trim()
  || [...(el.labels || [])].map(l => l.textContent).join("").trim();
const problems = [];
const where = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " "
  + (el.textContent || "").trim().slice(0, 40);
if (!document.documentElement.lang) problems.push("html has no lang");
if (document.querySelectorAll("main").length !== 1) problems.push("not exactly one main");
if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
if (!document.title.trim()) problems.push("no title");
for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea"))
  if (!name(el)) problems.push("no label: " + where(el) + " name=" + el.name);
for (const el of document.querySelectorAll("button, a[href]"))
  if (!(el.textContent.trim() || name(el))) problems.push("no name: " + where(el));
for (const form of document.querySelectorAll("form"))
  if (form.method === "post" && !(form.querySelector("input[type=hidden][name=csrf]") || {}).value)
    problems.push("a form without its CSRF token: " + form.action);
if (document.scripts.length) problems.push("a script: the pages work without JavaScript");
for (const el of document.querySelectorAll("*"))
  for (const a of el.attributes)
    if (/^on/i.test(a.name)) problems.push("a script handler: " + where(el) + " " + a.name);
const ids = [...document.querySelectorAll("[id]")].map(e => e.id);
if (new Set(ids).size !== ids.length) problems.push("duplicate ids");
let texts = 0;
for (const el of document.querySelectorAll("body *")) {
  if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) || !shown(el)) continue;
  const s = getComputedStyle(el), bg = background(el), fg = over(parse(s.color), bg);
  const px = parseFloat(s.fontSize), large = px >= 24 || (px >= 18.66 && Number(s.fontWeight) >= 700);
  const r = ratio(fg, bg); texts += 1;
  if (r < (large ? 3 : 4.5)) problems.push("contrast " + r.toFixed(2) + ": " + where(el) + " " + s.color + " on " + bg);
}
if (!texts) problems.push("no text checked");
return problems;
"""

# A control's key: what it is and where in the page (a radio group once: Tab stops at one of its radios).
KEY = r"""
const key = el => el.tagName.toLowerCase() + "|" + (el.type === "radio" ? "radio:" + el.name + ":"
  + [...document.forms].indexOf(el.form) : [...document.querySelectorAll("*")].indexOf(el) + ":"
  + (el.id || el.name || el.getAttribute("href") || el.textContent.trim()));
"""

# What the focused element shows: its focus ring's contrast with the background around it (the outline's
# colour, or the box-shadow's, whichever stands out more), and what it is.
FOCUS = KEY + COLOUR + r"""
const el = document.activeElement, s = getComputedStyle(el);
let bg = [255, 255, 255];
for (let e = el.parentElement; e; e = e.parentElement) {
  const c = parse(getComputedStyle(e).backgroundColor); if (c[3] > 0) { bg = c; break; } }
const rings = [];
if (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2) rings.push(ratio(parse(s.outlineColor), bg));
const shadow = s.boxShadow.match(/rgba?\([^)]+\)/); if (shadow) rings.push(ratio(parse(shadow[0]), bg));
return {key: key(el), ring: rings.length ? Math.max(...rings) : 0, body: el === document.body};
"""

# Every control Tab should reach, keyed as FOCUS keys them (a radio group once).
FOCUSABLE = KEY + r"""
const shown = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
const keys = new Set();
for (const el of document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea")) {
  if (el.disabled || el.tabIndex < 0 || (!shown(el) && !el.classList.contains("skip"))) continue;
  keys.add(key(el));
}
return [...keys];
"""


def keys(web: Web, *pressed: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(web.driver).send_keys(*pressed).perform()


def check_page(web: Web) -> None:
    """The page's labels, names and contrast; then Tab from the top through every control, each with a
    visible focus ring, and back to where it started."""
    from selenium.webdriver.common.keys import Keys

    assert web.driver.execute_script(AUDIT) == [], web.driver.current_url
    want = set(web.driver.execute_script(FOCUSABLE))
    web.driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    reached: list[str] = []
    weak: list[str] = []
    for _ in range(4 * len(want) + 3):
        keys(web, Keys.TAB)
        focus = web.driver.execute_script(FOCUS)
        if reached and focus["key"] == reached[-1]:
            continue          # the next part of the same control (a date input: day, month, year)
        if focus["body"] or focus["key"] in reached:
            break
        reached.append(focus["key"])
        if focus["ring"] < 3:
            weak.append(f"{focus['key']} ({focus['ring']:.2f})")
    assert set(reached) == want, (web.driver.current_url, want - set(reached), set(reached) - want)
    assert reached[0].endswith(":#main")   # the skip link first
    assert weak == [], web.driver.current_url


def test_the_sign_in_page_and_a_keyboard_only_sign_in_and_consent_change(web: Web) -> None:
    from selenium.webdriver.common.keys import Keys

    web.driver.delete_all_cookies()
    web.open("/signin")
    check_page(web)
    web.open("/language/fr?next=/signin")
    check_page(web)
    web.open("/language/en?next=/signin")
    # Keyboard alone: Tab to the NISS, type, Tab to the code, type, Tab to the profiles (citizen is checked),
    # Enter submits the form.
    secret = web_of(web.box).idp.secrets.enrol(A).secret
    web.driver.execute_script("document.activeElement && document.activeElement.blur()")
    for _ in range(12):
        keys(web, Keys.TAB)
        if web.driver.execute_script("return document.activeElement.id") == "ssin":
            break
    keys(web, A, Keys.TAB, pyotp.TOTP(secret).now(), Keys.TAB)
    assert web.driver.execute_script("return document.activeElement.id") == "profile-citizen"
    old = web.by("html")
    keys(web, Keys.ENTER)
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(web.driver, 20).until(lambda _d: test_web._gone(old))
    assert web.all("form.logout") and web.by("#patient-name").text == "Peeters, Jan Pieter"
    check_page(web)
    # The first inclusion's consent (agreed: "refuses" is offered checked), changed with keys only: Tab to
    # the group, Tab over the date (today's), Enter on the button.
    for _ in range(30):
        keys(web, Keys.TAB)
        if web.driver.execute_script("return document.activeElement.id") == "consent-refuse-1":
            break
    keys(web, Keys.TAB)
    assert web.driver.execute_script("return document.activeElement.id") == "consent-date-1"
    for _ in range(4):        # over the date's day, month and year
        keys(web, Keys.TAB)
        if web.driver.execute_script("return document.activeElement.type") == "submit":
            break
    assert web.driver.execute_script("return document.activeElement.textContent") == "Save the change"
    old = web.by("html")
    keys(web, Keys.ENTER)
    WebDriverWait(web.driver, 20).until(lambda _d: test_web._gone(old))
    assert "The change is saved." in web.main()
    assert web.all("section.inclusion")[0].find_element("css selector", ".consent").text.startswith("Refuses")
    check_page(web)   # with the notice


def test_the_pages_of_psi_staff_and_of_refusals(web: Web) -> None:
    web.sign_in(ADMIN_LEUVEN, "psi-staff")
    check_page(web)
    web.open("/declare")
    check_page(web)
    web.consult(A)                     # principal in Leuven: the forms to change it
    assert web.all("section.inclusion")
    check_page(web)
    web.consult(NOBODY_INCLUDED)       # a refusal: the error message's colours too
    assert web.by("#error").text == "No inclusion was found for this patient."
    check_page(web)
    for language in ("fr", "nl"):      # the same refusal, in the language of the switch
        web.open(f"/language/{language}?next=/home")
        web.consult(NOBODY_INCLUDED)
        assert web.by("#error").text == translations(language).gettext("No inclusion was found for this patient.")
        assert web.by("html").get_attribute("lang") == language and "No inclusion" not in web.main()
        check_page(web)
    web.open("/language/en?next=/home")
    web.sign_in(COORD_LEUVEN, "psi-staff")
    web.open("/projects/91000153")
    assert web.all("tbody tr")
    check_page(web)


def test_the_forged_post_page_and_the_signed_out_page(web: Web) -> None:
    web.sign_in(support.PHARMACIST_SSIN, "pharmacist")
    forged = (f'<form method="post" action="{web.url}logout"><button id="go">go</button></form>')
    web.driver.get("data:text/html;base64," + base64.b64encode(forged.encode()).decode())
    web.go(web.by("#go"))
    assert "This form has expired" in web.main()
    check_page(web)
    web.open("/home")
    web.sign_out()
    check_page(web)


def test_the_nurses_premium_page(web: Web) -> None:
    web.sign_in(ssin_of(web.box, FONTAINE), "provider")
    web.open("/premium/")
    assert web.all("table.premium")
    check_page(web)


def test_the_inspector_pages(web: Web, sandbox: Sandbox) -> None:
    started = dt.datetime.now(dt.UTC)
    for n in range(2):
        assert support.post(sandbox.urls["cobrha"], f"<not-soap n='{n}'/>".encode()).status == 500
    web.driver.delete_all_cookies()
    web.open("/inspector/")
    check_page(web)
    operator_sign_in(web, "not-the-token")
    assert "not this sandbox's admin token" in web.main()
    check_page(web)
    operator_sign_in(web, admin_token(sandbox.settings.data_dir))
    web.open(f"/inspector/?service=cobrha&since={started.strftime('%Y-%m-%dT%H:%M:%S.%f')}")
    ids = [tr.get_attribute("data-id") for tr in web.all("tbody tr")]
    assert len(ids) == 2
    check_page(web)
    web.open(f"/inspector/exchanges/{ids[0]}")
    assert web.all("#reason")
    check_page(web)
    web.open(f"/inspector/diff?id={ids[1]}&id={ids[0]}")
    assert web.all("#diff")
    check_page(web)


def test_the_checks_find_what_they_look_for(web: Web) -> None:
    """A page with every fault the checks look for, each found (the checks can fail)."""
    from selenium.webdriver.common.keys import Keys

    bad = ('<html><head><title>bad</title><style>:focus { outline: 3px solid #ffbf47; }</style></head><body>'
           '<main><p style="color:#999">pale grey on white</p><h2 style="color:#fff;background:#ffbf47">pale</h2>'
           '<input id="unlabelled"><a href="/x"></a><form method="post"></form>'
           '<button id="b" onclick="x()">ok</button><span id="b">twice</span><script>1</script>'
           '<p style="color:#767676">#767676 on white: 4.54, enough</p></main></body></html>')
    web.driver.get("data:text/html;base64," + base64.b64encode(bad.encode()).decode())
    found = web.driver.execute_script(AUDIT)
    assert "html has no lang" in found and "not exactly one h1" in found and "duplicate ids" in found
    assert any(f.startswith("a form without its CSRF token") for f in found)
    assert "a script: the pages work without JavaScript" in found and any("onclick" in f for f in found)
    assert any(f.startswith("no label: input#unlabelled") for f in found)
    assert any(f.startswith("no name: a") for f in found)
    contrast = [f for f in found if f.startswith("contrast")]
    assert len(contrast) == 2 and any("pale grey" in f for f in contrast) and any("h2" in f for f in contrast)
    keys(web, Keys.TAB)
    focus = web.driver.execute_script(FOCUS)
    assert focus["key"].endswith(":unlabelled") and 1.5 < focus["ring"] < 3   # the yellow ring alone on white
