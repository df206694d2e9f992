"""Errors a user can fix: the message names the setting and what is allowed."""


class ConfigError(ValueError):
    pass
