"""Products and prices."""

from __future__ import annotations

from typing import Any

from ..api import ApiRequest, filter_equal, live, route
from ..errors import invalid
from ..params import get_bool, get_dict, get_int, get_list, get_str, merge_metadata
from ..render import paginate
from ..sandbox import Sandbox
from ..shapes import catalog as shapes
from ..shapes.customers import deleted
from ..store import JsonObject

# The currencies Stripe supports (ISO 4217, lower case as Stripe answers them). A code outside the
# list is refused as at Stripe; one Stripe adds later is refused too (stricter, never more lenient).
_CURRENCY_CODES = """
usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp byn bzd
cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq gyd hkd
hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga
mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron
rsd rub rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs
vnd vuv wst xaf xcd xof xpf yer zar zmw
"""
CURRENCIES = frozenset(_CURRENCY_CODES.split())


def get_currency(params: dict[str, Any], name: str = "currency", *, param: str | None = None) -> str:
    """A required currency code. Stripe reads it case-insensitively and answers it in lower case."""
    raw = get_str(params, name, required=True, param=param)
    assert raw is not None
    code = raw.lower()
    if code not in CURRENCIES:
        raise invalid(
            f"Invalid currency: {raw}. Stripe currently supports these currencies: {', '.join(sorted(CURRENCIES))}",
            param or name,
        )
    return code


def create_product(sb: Sandbox, params: dict[str, Any]) -> JsonObject:
    store = sb.store
    name = get_str(params, "name", required=True)
    assert name is not None
    product_id = get_str(params, "id") or store.new_id("prod", 14)
    if store.get(product_id) is not None:
        raise invalid("Product already exists.", "id", code="resource_already_exists")
    product = shapes.product(product_id, store.now(), name)
    _apply_product_fields(product, params)
    sb.create(product, "product.created")
    default_price_data = get_dict(params, "default_price_data")
    if default_price_data:
        price = create_price(sb, {**default_price_data, "product": product["id"]})
        sb.update(product, {"default_price": price["id"]}, "product.updated")
    return product


def _apply_product_fields(product: JsonObject, params: dict[str, Any]) -> None:
    for name in ("description", "statement_descriptor", "unit_label", "url", "tax_code"):
        if name in params:
            product[name] = get_str(params, name)
    if "active" in params:
        product["active"] = get_bool(params, "active")
    if "images" in params:
        product["images"] = get_list(params, "images")
    if "metadata" in params:
        product["metadata"] = merge_metadata(product["metadata"], params["metadata"])


@route("POST", "/v1/products")
def post_product(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return create_product(sb, req.params)


@route("GET", "/v1/products/{id}")
def get_product(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "product")


@route("POST", "/v1/products/{id}")
def update_product(sb: Sandbox, req: ApiRequest) -> JsonObject:
    product = sb.store.require(req.arg("id"), "product")
    updated = dict(product)
    _apply_product_fields(updated, req.params)
    if "name" in req.params:
        updated["name"] = get_str(req.params, "name", required=True)
    if "default_price" in req.params:
        price_id = get_str(req.params, "default_price")
        if price_id is not None:
            price = sb.store.require(price_id, "price", "default_price")
            if price["product"] != product["id"]:
                raise invalid("The default price must belong to this product.", "default_price")
        updated["default_price"] = price_id
    changes = {k: v for k, v in updated.items() if product.get(k) != v}
    if changes:
        changes["updated"] = sb.store.now()
        sb.update(product, changes, "product.updated")
    return product


@route("DELETE", "/v1/products/{id}")
def delete_product(sb: Sandbox, req: ApiRequest) -> JsonObject:
    product = sb.store.require(req.arg("id"), "product")
    if any(p["product"] == product["id"] for p in sb.store.newest_first("price")):
        raise invalid("This product cannot be deleted because it has one or more user-created prices.")
    sb.emit("product.deleted", product)
    stub = deleted(product["id"], "product")
    sb.store.replace(stub)
    return stub


@route("GET", "/v1/products")
def list_products(sb: Sandbox, req: ApiRequest) -> JsonObject:
    products = filter_equal(live(sb.store.newest_first("product")), req.params, ["active", "shippable", "url"])
    ids = get_list(req.params, "ids")
    if ids:
        products = [p for p in products if p["id"] in ids]
    return paginate(products, req.params, "/v1/products")


def create_price(sb: Sandbox, params: dict[str, Any]) -> JsonObject:
    store = sb.store
    currency = get_currency(params)
    product_id = get_str(params, "product")
    product_data = get_dict(params, "product_data")
    if product_id is None and not product_data:
        raise invalid("You must specify either product or product_data.", "product", code="parameter_missing")
    if product_id is not None:
        store.require(product_id, "product", "product")
    unit_amount = get_int(params, "unit_amount", minimum=0)
    if unit_amount is None:
        raise invalid("Missing required param: unit_amount.", "unit_amount", code="parameter_missing")
    recurring_params = get_dict(params, "recurring")
    recurring = None
    if recurring_params:
        interval = get_str(recurring_params, "interval")
        if interval not in ("day", "week", "month", "year"):
            raise invalid(
                "Invalid recurring[interval]: must be one of day, week, month, or year", "recurring[interval]"
            )
        count = get_int(recurring_params, "interval_count", minimum=1) or 1
        trial = get_int(recurring_params, "trial_period_days", minimum=0)
        recurring = shapes.recurring(interval, count, trial)
    lookup_key = get_str(params, "lookup_key")
    if lookup_key is not None:
        holder = _price_with_lookup_key(sb, lookup_key)
        if holder is not None:
            if get_bool(params, "transfer_lookup_key"):
                sb.update(holder, {"lookup_key": None}, "price.updated")
            else:
                raise invalid(f"A price (`{holder['id']}`) already uses that lookup key.", "lookup_key")
    if product_id is None:
        product = create_product(sb, product_data)
        product_id = product["id"]
    price = shapes.price(store.new_id("price"), store.now(), product_id, currency, unit_amount, recurring)
    price["lookup_key"] = lookup_key
    price["nickname"] = get_str(params, "nickname")
    if "active" in params:
        price["active"] = get_bool(params, "active")
    if "tax_behavior" in params:
        price["tax_behavior"] = get_str(params, "tax_behavior")
    if "metadata" in params:
        price["metadata"] = merge_metadata({}, params["metadata"])
    return sb.create(price, "price.created")


def _price_with_lookup_key(sb: Sandbox, lookup_key: str) -> JsonObject | None:
    for price in sb.store.newest_first("price"):
        if price["lookup_key"] == lookup_key:
            return price
    return None


@route("POST", "/v1/prices")
def post_price(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return create_price(sb, req.params)


@route("GET", "/v1/prices/{id}")
def get_price(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "price")


@route("POST", "/v1/prices/{id}")
def update_price(sb: Sandbox, req: ApiRequest) -> JsonObject:
    price = sb.store.require(req.arg("id"), "price")
    params = req.params
    changes: dict[str, Any] = {}
    if "active" in params:
        changes["active"] = get_bool(params, "active")
    if "nickname" in params:
        changes["nickname"] = get_str(params, "nickname")
    if "metadata" in params:
        changes["metadata"] = merge_metadata(price["metadata"], params["metadata"])
    if "lookup_key" in params:
        lookup_key = get_str(params, "lookup_key")
        holder = _price_with_lookup_key(sb, lookup_key) if lookup_key else None
        if holder is not None and holder is not price:
            if not get_bool(params, "transfer_lookup_key"):
                raise invalid(f"A price (`{holder['id']}`) already uses that lookup key.", "lookup_key")
            sb.update(holder, {"lookup_key": None}, "price.updated")
        changes["lookup_key"] = lookup_key
    sb.update(price, changes, "price.updated")
    return price


@route("GET", "/v1/prices")
def list_prices(sb: Sandbox, req: ApiRequest) -> JsonObject:
    prices = filter_equal(sb.store.newest_first("price"), req.params, ["active", "product", "type", "currency"])
    lookup_keys = get_list(req.params, "lookup_keys")
    if lookup_keys:
        prices = [p for p in prices if p["lookup_key"] in lookup_keys]
    recurring = get_dict(req.params, "recurring")
    if "interval" in recurring:
        prices = [p for p in prices if p["recurring"] and p["recurring"]["interval"] == recurring["interval"]]
    return paginate(prices, req.params, "/v1/prices")


@route("GET", "/v1/products/{id}/features")
def list_product_features(sb: Sandbox, req: ApiRequest) -> JsonObject:
    # Stripe's Entitlements features are not emulated: every product has none. dj-stripe's sync
    # lists them for each product.
    product = sb.store.require(req.arg("id"), "product")
    return paginate([], req.params, f"/v1/products/{product['id']}/features")
