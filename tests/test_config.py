"""Configuration from dicts, YAML files and text: tags, ${VAR}, and errors naming the key."""

from __future__ import annotations

import pytest

import eventor as evr
from eventor.config import load_config


def test_defaults_match_the_seed():
    cfg = load_config()
    assert (cfg.task_construct, cfg.max_concurrent, cfg.stop_on_exception) == ("process", -1, True)
    assert cfg.envvar_prefix == "EVENTOR_" and cfg.shared_db is False


def test_a_dict_with_or_without_the_root_tag():
    assert load_config({"EVENTOR": {"max_concurrent": 3}}).max_concurrent == 3
    assert load_config({"max_concurrent": 4}).max_concurrent == 4


def test_a_yaml_file_under_a_tag_chosen_by_environment(tmp_path, monkeypatch):
    path = tmp_path / "eventor.yaml"
    path.write_text("EVENTOR:\n  max_concurrent: 2\nNIGHTLY:\n  max_concurrent: 8\n")
    assert load_config(str(path)).max_concurrent == 2
    monkeypatch.setenv("EVENTOR_CONFIG_TAG", "NIGHTLY")
    assert load_config(str(path)).max_concurrent == 8


def test_yaml_text_and_environment_variables(monkeypatch):
    monkeypatch.setenv("PGPASS", "s3cret")
    cfg = load_config("EVENTOR:\n  DATABASES:\n    pg:\n      dialect: postgresql\n"
                      "      password: ${PGPASS}\n      port: 5432\n")
    assert cfg.DATABASES["pg"]["password"] == "s3cret"


def test_an_unknown_key_names_the_path_the_file_and_the_likely_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("EVENTOR:\n  max_concurent: 2\n")
    with pytest.raises(evr.EventorConfigError) as info:
        load_config(str(path))
    text = str(info.value)
    assert text.startswith("EVENTOR.max_concurent: unknown key; did you mean 'max_concurrent'?")
    assert str(path) in text and info.value.key == "EVENTOR.max_concurent"
    with pytest.raises(evr.EventorConfigError, match=r"^LOGGING.consle: unknown key; did you "
                       r"mean 'console'\?$"):
        load_config({"LOGGING": {"consle": False}})


def test_a_wrong_type_names_the_nested_key():
    with pytest.raises(evr.EventorConfigError,
                       match=r"EVENTOR.DATABASES.pgdb1.port: expected int, got 'abc'"):
        load_config("EVENTOR:\n  DATABASES:\n    pgdb1:\n      dialect: postgresql\n"
                    "      port: abc\n")


def test_a_missing_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(evr.EventorConfigError, match=r"\$\{NOPE_NOT_SET\} is not set"):
        load_config({"workdir": "${NOPE_NOT_SET}/x"})


def test_bad_yaml_and_missing_files_are_config_errors(tmp_path):
    with pytest.raises(evr.EventorConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("EVENTOR:\n  a: [1,\n")
    with pytest.raises(evr.EventorConfigError, match="not valid YAML.*line"):
        load_config(str(bad))


def test_max_concurrent_zero_is_refused():
    with pytest.raises(evr.EventorConfigError, match="max_concurrent: expected a positive int or -1"):
        load_config({"max_concurrent": 0})


def test_a_missing_databases_tag_is_an_error_naming_it(tmp_path):
    with pytest.raises(evr.EventorConfigError, match="DATABASES.pg.dialect: missing"):
        evr.Eventor(store="pg", config={"DATABASES": {"pg": {"host": "x"}},
                                        "LOGGING": {"console": False}})


@pytest.mark.parametrize(("logging", "message"), [
    ({"logging_level": "LOUD"}, "EVENTOR.LOGGING.logging_level: unknown level 'LOUD'; use one of"),
    ({"renderer": "xml"}, "EVENTOR.LOGGING.renderer: unknown renderer 'xml'; use text or json"),
])
def test_bad_logging_values_fail_when_the_config_is_read(logging, message):
    with pytest.raises(evr.EventorConfigError, match=message):
        load_config({"EVENTOR": {"LOGGING": logging}})
