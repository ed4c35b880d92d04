"""The status code -> domain error table is one explicit table (imgsearch.errors.BY_CODE): what an
error from another service becomes never depends on which modules were imported first."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from imgsearch import errors

_PROBE = """
import json, sys
for name in sys.argv[1:]:
    __import__(name)
from imgsearch.embedder.convert import error_from_item
from imgsearch.embedder.remote import error_from_rpc
from imgsearch.errors import BY_CODE, error_for_code
from imgsearch.protogen.imagesearch.v1 import common_pb2
print(json.dumps({
    "table": sorted(BY_CODE),
    "deadline": type(error_for_code("DEADLINE_EXCEEDED", "x")).__name__,
    "item": {c: type(error_from_item(common_pb2.ItemError(code=c, message="x"))).__name__ for c in range(17)},
}))
"""


def _table_after(*modules: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_table_does_not_depend_on_import_order():
    plain = _table_after()
    after_interceptors = _table_after("imgsearch.rpc.interceptors", "imgsearch.app.serve")
    assert plain == after_interceptors
    assert len(plain["table"]) == 8
    assert plain["deadline"] == "DeadlineExceeded"
    assert plain["item"]["4"] == "DeadlineExceeded"
    assert plain["item"]["13"] == "ServiceError"  # INTERNAL has no domain error of its own


def test_every_domain_error_has_its_own_code():
    for code, cls in errors.BY_CODE.items():
        assert cls.code_name == code
        assert issubclass(cls, errors.ServiceError)
    assert errors.StreamIdle.code_name == "DEADLINE_EXCEEDED"
    assert isinstance(errors.StreamIdle("idle"), errors.DeadlineExceeded)


@pytest.mark.parametrize("code", sorted(errors.BY_CODE))
def test_error_for_code_keeps_the_message(code):
    err = errors.error_for_code(code, "the reason")
    assert err.code_name == code and err.message == "the reason"
