from django.urls import path

from apps.checkout import api

urlpatterns = [
    path("checkout/session", api.CheckoutSessionCreateApi.as_view(), name="checkout-session-create"),
    path("portal/session", api.PortalSessionCreateApi.as_view(), name="portal-session-create"),
]
