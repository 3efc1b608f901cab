"""paydesk: one correct payment core for Django projects."""

__version__ = "0.1.0"
