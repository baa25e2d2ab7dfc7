"""The settings: defaults, the file then the command line, refusals that name the key, renamed keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from unitgate.config.settings import DEPRECATED_KEYS, ConfigError, Settings, load_settings
from unitgate.services.systemd.allowlist import DEFAULT_ALLOWLIST
from unitgate.services.systemd.route import RestartVia
from unitgate.services.systemd.units import Scope


def test_defaults() -> None:
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.build_allowlist().names == DEFAULT_ALLOWLIST
    options = settings.systemctl_options()
    assert options.scope is Scope.SYSTEM
    assert (options.status_timeout, options.action_timeout) == (5.0, 30.0)
    assert settings.route() is RestartVia.AUTO


def test_file_then_command_line(tmp_config: Callable[[str], Path]) -> None:
    path = tmp_config('scope = "user"\nport = 9000\nhost = "127.0.0.2"\nstatus_timeout = 2\n')
    settings = load_settings(path, {"port": 9100, "host": None})
    assert (settings.scope, settings.port, settings.host) == ("user", 9100, "127.0.0.2")
    assert settings.status_timeout == 2.0


def test_allowlist_replace_and_extend(tmp_config: Callable[[str], Path]) -> None:
    replaced = load_settings(tmp_config('allowlist = ["nginx", "caddy"]\n'))
    assert replaced.build_allowlist().names == {"nginx", "caddy"}
    extended = load_settings(tmp_config('extra_services = ["caddy", "php-fpm@www"]\n'))
    assert extended.build_allowlist().names == DEFAULT_ALLOWLIST | {"caddy", "php-fpm@www"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 80\n", "prot: unknown key"),
        ('port = "80"\n', "port: Input should be a valid integer"),
        ("port = 70000\n", "port: Input should be less than or equal to 65535"),
        ('scope = "global"\n', "scope: Input should be 'system' or 'user'"),
        ("action_timeout = -1\n", "action_timeout: Input should be greater than 0"),
        ("restart_limit = 2\naction_limit = 3\n", "restart_limit is the old name of action_limit"),
        ('allowlist = "nginx"\n', "allowlist: Input should be a valid tuple"),
        ('extra_services = ["nginx;reboot"]\n', "extra_services: Value error, service name 'nginx;reboot'"),
        ('allowlist = ["../etc/passwd"]\n', "allowlist: Value error, service name '../etc/passwd'"),
        ('extra_services = ["nginx.service"]\n', "'.service' suffix"),
        ("allowlist = [1]\n", "allowlist.0: Input should be a valid string"),
        ("poll_interval = true\n", "poll_interval: Input should be a valid number"),
        ("port = \n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_config: Callable[[str], Path], text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_config(text))
    assert message in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope\.toml"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(("old", "new"), sorted(DEPRECATED_KEYS.items()))
def test_renamed_keys_are_still_read_with_a_warning(
    tmp_config: Callable[[str], Path], old: str, new: str
) -> None:
    with pytest.warns(FutureWarning, match=f"{old} is deprecated: call it {new}"):
        settings = load_settings(tmp_config(f"{old} = 7\n"))
    assert getattr(settings, new) == 7
