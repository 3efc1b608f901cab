"""The WSGI application gunicorn serves: ``bench._project.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench._project.settings")

application = get_wsgi_application()
