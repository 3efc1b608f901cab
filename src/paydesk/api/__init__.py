"""paydesk's REST API (Django REST framework), mounted at ``<prefix>/api/v1/``.

Entry points only: every write goes through :mod:`paydesk.services`. ``base.py`` holds the
view bases every endpoint uses (authentication, permissions, scopes, the one error body).
"""
