"""RETURN_URL_ORIGINS: what counts as an allowed origin (issue 13, finding 7)."""

from __future__ import annotations

import pytest

from ratio_zoom.core.origins import origin_of, parse_origins
from ratio_zoom.core.settings import ConfigurationError, load_settings


def test_origins_are_normalised_and_compared_whole() -> None:
    assert origin_of("https://Ratio.Example:443/settings?x=1") == "https://ratio.example"
    assert origin_of("https://ratio.example:8443/") == "https://ratio.example:8443"
    assert origin_of("http://localhost:3000/done") == "http://localhost:3000"
    assert origin_of("http://[::1]:3000/") == "http://[::1]:3000"
    for refused in ("http://ratio.example/", "https://user@ratio.example/", "https:/\\evil.example",
                    "javascript:alert(1)", "ftp://ratio.example/", " https://ratio.example", "https://ratio.example:99999/"):
        assert origin_of(refused) is None, refused


def test_the_setting_refuses_anything_but_origins() -> None:
    assert parse_origins("https://a.example, https://b.example:8443/,http://localhost") == (
        "https://a.example", "https://b.example:8443", "http://localhost")
    for bad in ("http://a.example", "https://a.example/path", "a.example", "https://a.example?x=1"):
        with pytest.raises(ValueError):
            parse_origins(bad)
        with pytest.raises(ConfigurationError, match="RETURN_URL_ORIGINS"):
            load_settings(_env_file=None, RETURN_URL_ORIGINS=bad)
