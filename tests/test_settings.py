"""Settings are read once from env/.env, validated, and invalid values name their variable."""

import pytest

from core.settings import Settings, SettingsError


def test_defaults_without_environment():
    settings = Settings.from_env(environ={}, env_file=None)
    assert settings.database_url == "sqlite:///ai_models.db"
    assert (settings.host, settings.port, settings.debug) == ("127.0.0.1", 5000, False)
    assert settings.gemini_api_key is None and not settings.has_gemini_key


def test_environment_overrides_and_legacy_names():
    settings = Settings.from_env(
        environ={"DATABASE_PATH": "legacy.db", "GOOGLE_API_KEY": "k-123", "FLASK_PORT": "8080", "LOG_LEVEL": "debug"},
        env_file=None,
    )
    assert settings.database_url == "sqlite:///legacy.db"
    assert settings.port == 8080 and settings.log_level == "DEBUG"
    assert settings.has_gemini_key
    assert "k-123" not in repr(settings) and "k-123" not in str(settings.model_dump())


def test_database_url_wins_over_database_path():
    settings = Settings.from_env(environ={"DATABASE_URL": "sqlite:///a.db", "DATABASE_PATH": "b.db"}, env_file=None)
    assert settings.database_url == "sqlite:///a.db"


def test_dotenv_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("FLASK_PORT=7000\nHOST=0.0.0.0\n")
    settings = Settings.from_env(environ={"HOST": "127.0.0.2"}, env_file=str(env_file))
    assert settings.port == 7000 and settings.host == "127.0.0.2"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FLASK_PORT", "eighty"), ("FLASK_PORT", "70000"), ("LOG_LEVEL", "LOUD"), ("DEBUG", "maybe"),
     ("LOG_PROMPTS", "some")],
)
def test_invalid_value_names_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(environ={variable: value}, env_file=None)
