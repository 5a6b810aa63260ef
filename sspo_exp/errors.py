"""The project's user-facing error: a bad config value, reported as one line naming the field (exit status 2)."""


class ConfigError(ValueError):
    """A config value is invalid; the message names the field, the value and what would be right."""
