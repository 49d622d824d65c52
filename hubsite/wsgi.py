import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings")
application = get_wsgi_application()

from hubsite.warmup import warm_up_process  # noqa: E402  (needs the settings loaded)

warm_up_process()
