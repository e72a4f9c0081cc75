"""Jinja2 email templates of the notifier (package data: `*.j2`)."""
