"""Schemathesis hooks for scripts/schemathesis.sh (loaded by scripts/schemathesis.toml).

Idempotency-Key: the same key with another request is 422 idempotency_key_reused, by design
(README, Idempotency). Schemathesis draws keys from the header's schema and draws the same
simple ones ("0") for many bodies, so most creating POSTs were refused for that alone. Each
key it draws that the server would take is made unique here (the drawn key, cut to leave
room, then "-" and a random suffix). Negative cases are sent as drawn: an edit would make
Schemathesis judge them again as positive and put back a header they leave out.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[!-~]{1,255}$")
SUFFIX = 33  # "-" and 32 hex digits


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return
    headers = case.headers
    if not headers:
        return
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and VALID_KEY.match(value):
            headers[name] = f"{value[: 255 - SUFFIX]}-{uuid.uuid4().hex}"
