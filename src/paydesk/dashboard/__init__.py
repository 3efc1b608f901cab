"""paydesk's staff dashboard: mount it like the admin, at any URL.

::

    urlpatterns = [
        path("dashboard/", include("paydesk.dashboard.urls")),  # namespace "paydesk_dashboard"
        ...
    ]

Every page is for active staff only (``paydesk.dashboard.access``); actions (refund, capture,
approve, revoke a key...) also need the Django permission they name, and every one of them
goes through ``paydesk.services``, exactly like the REST API and the admin. The pages are
server-rendered Django templates under ``templates/paydesk/dashboard/`` (override any of them
in a project's own template directory), with htmx, the stylesheet and the small script shipped
in ``static/paydesk/dashboard/``: no CDN, works offline. See docs/dashboard.md.
"""
