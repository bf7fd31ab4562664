from apps.catalog import api_prices, api_products

urlpatterns = [
    *api_products.urlpatterns,
    *api_prices.urlpatterns,
]
