"""`unitgate setup`'s pure parts: the files it writes, and keys changed in place."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from unitgate.config.settings import load_settings
from unitgate.deploy.install import config_text, set_key, shipped, unit_text
from unitgate.services.policy.access import Role
from unitgate.services.policy.tokens import config_snippet, new_token, token_sha256


def test_a_new_config_is_valid_and_keeps_only_the_hash(tmp_path: Path) -> None:
    token = new_token()
    text = config_text(config_snippet("operator", Role.OPERATOR, token), "polkit", "127.0.0.1", 8123)
    assert token not in text
    path = tmp_path / "unitgate.toml"
    path.write_text(text)
    settings = load_settings(path)
    assert (settings.port, settings.restart_via, settings.audit_file) == (
        8123,
        "polkit",
        "/var/log/unitgate/audit.log",
    )
    assert [t.sha256 for t in settings.tokens] == [token_sha256(token)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('port = 8000\nhost = "x"\n', {"port": 9000, "host": "x"}),
        ('host = "x"\n', {"port": 9000, "host": "x"}),
        # a key below a table is not the top-level key: the new one goes on top
        ('host = "x"\n[[tokens]]\nport = 1\n', {"port": 9000, "host": "x"}),
    ],
)
def test_set_key_changes_only_the_top_level_key(text: str, expected: dict[str, object]) -> None:
    changed = tomllib.loads(set_key(text, "port", "9000"))
    assert {key: changed[key] for key in expected} == expected
    assert set_key(set_key(text, "port", "9000"), "port", "9000") == set_key(text, "port", "9000")


def test_the_unit_starts_this_installation_with_this_config() -> None:
    unit = unit_text("/opt/venv/bin/unitgate", Path("/etc/unitgate/unitgate.toml"))
    assert "ExecStart=/opt/venv/bin/unitgate serve --config /etc/unitgate/unitgate.toml\n" in unit
    assert unit.count("ExecStart=") == 1
    assert "SupplementaryGroups=systemd-journal" in unit


def test_the_shipped_files_are_the_checkouts() -> None:
    root = Path(__file__).parents[1] / "deploy"
    assert shipped("unitgate.service") == (root / "unitgate.service").read_text()
    assert shipped("unitgate.service.d/sudo.conf") == (root / "unitgate.service.d" / "sudo.conf").read_text()
