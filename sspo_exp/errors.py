"""The project's user-facing error: a bad config value, reported as one line naming the field (exit status 2)."""


class ConfigError(ValueError):
    """The config cannot run as given: a value is invalid (the message names the field, the value and what would be
    right), or a prerequisite it needs is missing (the message names the command that makes it)."""
