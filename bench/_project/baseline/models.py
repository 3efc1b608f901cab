from django.db import models


class RawDelivery(models.Model):
    """One row per request: the raw body, nothing parsed, nothing checked."""

    body = models.TextField()

    def __str__(self) -> str:
        return f"raw delivery {self.pk}"
