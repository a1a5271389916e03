"""Settings: the dataclass defaults, then the environment, then explicit overrides — each default written once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mycarenet_ic.config import ENVIRONMENT, Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable, _ in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_without_environment_the_dataclass_defaults_hold(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings.from_env() == Settings()


def test_every_variable_is_read_as_its_field_type(clean_env: pytest.MonkeyPatch) -> None:
    given = {"MYCARENET_DATA_DIR": "/srv/box", "DATABASE_URL": "postgresql://db/x", "MYCARENET_MAX_BODY_BYTES": "2048",
             "MYCARENET_UPSTREAM_TIMEOUT": "2.5", "MYCARENET_SERVER_THREADS": "4", "MYCARENET_MAX_INFLIGHT": "0",
             "MYCARENET_TLS": "off", "MYCARENET_MUTATION_SYNC_SECONDS": "7", "MYCARENET_COBRHA_CACHE_SECONDS": "0",
             "MYCARENET_NR_CACHE_SECONDS": "1.5", "MYCARENET_TOKENS": "saml-hok", "MYCARENET_INSPECTOR": "0",
             "MYCARENET_INSPECTOR_MAX_EXCHANGES": "10", "MYCARENET_INSPECTOR_MAX_AGE_SECONDS": "60"}
    assert set(given) == {variable for variable, _ in ENVIRONMENT.values()}
    for variable, value in given.items():
        clean_env.setenv(variable, value)
    assert Settings.from_env() == dataclasses.replace(
        Settings(), data_dir=Path("/srv/box"), database_url="postgresql://db/x", max_body_bytes=2048,
        upstream_timeout_seconds=2.5, server_threads=4, max_inflight=0, tls=False, mutation_sync_seconds=7.0,
        cobrha_cache_seconds=0.0, nr_cache_seconds=1.5, accepted_tokens="saml-hok", inspector=False,
        inspector_max_exchanges=10, inspector_max_age_seconds=60)


def test_the_business_services_take_production_s_tokens_unless_told(clean_env: pytest.MonkeyPatch) -> None:
    # What passes against the sandbox must pass against MyCareNet: STS holder-of-key tokens only, by default.
    assert Settings().accepted_tokens == Settings.from_env().accepted_tokens == "saml-hok"
    clean_env.setenv("MYCARENET_TOKENS", " X509 , saml-hok,x509")
    assert Settings.from_env().accepted_tokens == "x509,saml-hok"


@pytest.mark.parametrize("raw", ["saml", "x509,kerberos", ","])
def test_an_unknown_token_kind_is_refused(clean_env: pytest.MonkeyPatch, raw: str) -> None:
    clean_env.setenv("MYCARENET_TOKENS", raw)
    with pytest.raises(ValueError, match="token kinds are x509 and/or saml-hok"):
        Settings.from_env()


@pytest.mark.parametrize(("raw", "tls"), [("0", False), ("False", False), (" no ", False), ("OFF", False),
                                          ("1", True), ("yes", True), ("", True)])
def test_tls_is_off_only_when_told(clean_env: pytest.MonkeyPatch, raw: str, tls: bool) -> None:
    clean_env.setenv("MYCARENET_TLS", raw)
    assert Settings.from_env().tls is tls


def test_an_empty_variable_counts_as_unset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "")
    clean_env.setenv("MYCARENET_MAX_INFLIGHT", "")
    assert Settings.from_env() == Settings()


def test_overrides_win_over_the_environment_and_none_means_not_given(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MYCARENET_DATA_DIR", "/from/env")
    clean_env.setenv("MYCARENET_TLS", "0")
    settings = Settings.from_env(data_dir="/given", host=None, tls=None, max_inflight=9)
    assert (settings.data_dir, settings.host, settings.tls, settings.max_inflight) == (
        Path("/given"), Settings.host, False, 9)
