from django.urls import path

from apps.webhooks import api
from apps.webhooks.receive import stripe_webhook

urlpatterns = [
    path("webhooks/stripe", stripe_webhook, name="webhooks-stripe"),
    # Seed B's path for the same endpoint, kept for clients configured from that document.
    path("billing/webhooks/stripe", stripe_webhook, name="webhooks-stripe-alias"),
    path("billing/replays", api.ReplayCreateApi.as_view(), name="replay-create"),
    path("billing/replays/<int:replay_id>", api.ReplayDetailApi.as_view(), name="replay-detail"),
]
