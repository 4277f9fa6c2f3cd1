"""Schemathesis hooks for scripts/schemathesis.sh: the order rules that OpenAPI cannot state.

The document (GET /openapi.json) states every rule of POST /orders that OpenAPI can express; the
few it cannot are in its descriptions, and the server refuses a request breaking them with a 422.
Schemathesis's positive_data_acceptance check expects a 2xx for every request that matches the
document, so a generated "valid" order that breaks one of those rules would be reported although
the 422 is the contract (README "Input rules and errors").

Schemathesis's documented answer ("validation_mismatch: extend generators to match runtime
rules") is a map hook: `map_case` below completes a generated order whose body was generated as
valid, so that it also keeps the rules the document cannot state. It only ever changes a value the
document already allows into one the server accepts; it never touches a body generated to be
invalid (negative mode), so negative_data_rejection still sees every invalid body as generated.

Two failures are the contract, and `filter_failure` drops exactly those and nothing else:
- positive_data_acceptance (ST202) on a 422 whose every listed error is an Idempotency-Key reused
  with another order: that depends on earlier requests, which no generator can know;
- use_after_free (ST301) when the read after `DELETE /orders/{id}` shows the order `canceled`,
  or a cancel requested at the exchange (`pending_cancel`, then `canceled`, `filled` or
  `expired`): the DELETE cancels, it does not remove (README).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation

import schemathesis
from schemathesis.core.parameters import ParameterLocation

ISIN_SHAPE = re.compile(r"^[A-Za-z]{2}[A-Za-z0-9]{9}[0-9]$")
DECIMAL_STRING = re.compile(r"^[0-9]+(\.[0-9]+)?$")
MAX_PRICE = Decimal("1000000000.00")
# `expires_at` must be in the future and at most 30 days ahead (the server's clock): a generated
# time outside is moved to a time inside, a minute to 29 days ahead.
EARLIEST = datetime.timedelta(minutes=1)
LATEST = datetime.timedelta(days=29)


def isin_check_digit(payload: str) -> str:
    """The ISIN check digit of 11 characters: Luhn over letters expanded to 10..35."""
    digits = "".join(str(int(c, 36)) for c in payload.upper())
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = int(d)
        if i % 2 == 0:
            d *= 2
            d = d // 10 + d % 10
        total += d
    return str((10 - total % 10) % 10)


def valid_isin(value: str) -> str:
    """Rule 1 (the ISIN's check digit): the same 11 characters with their check digit."""
    return value[:11] + isin_check_digit(value[:11])


def valid_price(value):
    """Rule 2 (a price's value): a JSON number with `multipleOf: 0.01` is a float to the
    generator (0.1 + 0.2 = 0.30000000000000004 passes a float tolerance); a decimal string's
    pattern cannot bound its value. A price the server would refuse becomes the nearest accepted
    one at or below it (at least 0.01); an accepted one is sent as generated (`"007"` too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value
    if isinstance(value, str) and not DECIMAL_STRING.match(value):
        return value  # not a decimal string: not generated as valid
    try:
        price = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        return value
    if Decimal(0) < price <= MAX_PRICE and price == price.quantize(Decimal("0.01")):
        return value
    if price.is_finite() and price > MAX_PRICE or not price.is_finite():
        accepted = MAX_PRICE
    else:
        accepted = max(price.quantize(Decimal("0.01"), rounding=ROUND_DOWN), Decimal("0.01"))
    if isinstance(value, int):
        return max(int(accepted), 1)
    if isinstance(value, float):
        return float(accepted)
    return str(accepted)


def valid_quantity(value: float) -> int:
    """Rule 4 (a quantity written as an integer): JSON Schema's `integer` admits `277.0`, which
    the server refuses rather than guess at (`must be an integer`); the same value as `277`."""
    return int(value)


def valid_expiry(value: str) -> str:
    """Rule 3 (`expires_at` in the future, at most 30 days ahead): a time inside the window,
    written with the generated time's own offset."""
    now = datetime.datetime.now(datetime.timezone.utc)
    # Deterministic per generated value, so that a shrunk or replayed case keeps its time.
    seed = int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big")
    span = (LATEST - EARLIEST).total_seconds()
    moved = now + EARLIEST + datetime.timedelta(seconds=seed % int(span))
    try:
        generated = datetime.datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:  # e.g. a leap second (`23:59:60`), valid RFC 3339 that Python can't read
        return moved.isoformat().replace("+00:00", "Z")
    if generated.tzinfo is None:
        return moved.isoformat().replace("+00:00", "Z")
    if now + EARLIEST <= generated <= now + LATEST:
        return value
    return moved.astimezone(generated.tzinfo).isoformat()


def is_create_order(context) -> bool:
    operation = context.operation
    return operation is not None and operation.method.upper() == "POST" and operation.path == "/orders"


def complete_order(body: dict) -> dict:
    """A body generated as a valid order, completed to keep rules 1 to 4 as well."""
    body = dict(body)
    instrument = body.get("instrument")
    if isinstance(instrument, str) and ISIN_SHAPE.match(instrument):
        body["instrument"] = valid_isin(instrument)
    quantity = body.get("quantity")
    if isinstance(quantity, float) and quantity.is_integer():
        body["quantity"] = valid_quantity(quantity)
    if "limit_price" in body and body["limit_price"] is not None:
        body["limit_price"] = valid_price(body["limit_price"])
    expires_at = body.get("expires_at")
    if isinstance(expires_at, str):
        body["expires_at"] = valid_expiry(expires_at)
    return body


@schemathesis.hook
def map_case(context, case):
    """Every generated case (coverage, fuzzing, stateful phases) whose body is positive."""
    if not is_create_order(context) or not isinstance(case.body, dict):
        return case
    meta = case.meta
    if meta is not None and meta.is_negative_at(ParameterLocation.BODY):
        return case
    case.body = complete_order(case.body)  # Always: `{"quantity": 2.0} == {"quantity": 2}`.
    return case


@schemathesis.hook
def before_add_examples(context, examples):
    """The examples phase's cases (the document's example, its missing optional attributes
    filled in, e.g. `expires_at` as 2000-01-01T00:00:00Z), which map_case does not see."""
    if not is_create_order(context):
        return
    for case in examples:
        if isinstance(case.body, dict):
            case.body = complete_order(case.body)


# Rule 5: the only 422 on a valid body that the document cannot rule out in advance.
KEY_REUSED = {"field": "Idempotency-Key", "message": "was already used with a different order"}


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but two that are the contract (README "Using the API")."""
    if failure.code == "ST301":
        return not is_canceled(response)
    if failure.code != "ST202" or response.status_code != 422 or not is_create_order(context):
        return True
    try:
        errors = json.loads(response.content).get("errors")
    except (ValueError, AttributeError):
        return True
    return not (errors and all(error == KEY_REUSED for error in errors))


def is_canceled(response) -> bool:
    """Rule 6: `DELETE /orders/{id}` cancels an order, it does not remove it: the order stays
    readable, with its history and its executions (README: "Asking again answers 200 with the same
    order"). Before placement it is `canceled` at once; once working at the exchange the DELETE
    answers 202 and the order is `pending_cancel` until the exchange ends it `canceled` or, if the
    fill won, `filled` (or `expired`). use_after_free (ST301) expects a 404 after a DELETE; its
    failure is dropped only when the response shows one of those, so a cancel that did not take
    still fails."""
    if response.status_code != 200:
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    if "status" in body:  # GET /orders/{id}
        return body["status"] in ("canceled", "pending_cancel", "filled", "expired")
    if "executions" in body:  # GET /orders/{id}/executions: the exchange's reports stay readable
        return True
    events = body.get("events") or []  # GET /orders/{id}/events
    return bool(events) and (
        events[-1].get("to") == "canceled"
        or any(event.get("to") == "pending_cancel" for event in events)
    )
