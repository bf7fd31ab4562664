from django.urls import path

from apps.webhooks import api
from apps.webhooks.receive import stripe_webhook

urlpatterns = [
    path("webhooks/stripe", stripe_webhook, name="webhooks-stripe"),
    path("billing/replays", api.ReplayCreateApi.as_view(), name="replay-create"),
    path("billing/replays/<int:replay_id>", api.ReplayDetailApi.as_view(), name="replay-detail"),
]
