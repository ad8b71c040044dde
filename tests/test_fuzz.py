"""Fuzz the HTTP API with hypothesis, driven by ocrhub/web/openapi.json: well over 1,000 bad or odd
requests against the real production server (the session ``server``).

The paths, methods, module names, request schema and response schemas come from the OpenAPI file;
the requests break them: random JSON values as the body, wrong types for ``images``, random strings
and bytes as base64 items, damaged real images, random content types, bodies that are not JSON,
random module names and paths, huge strings within (and just over) the body limit, data URLs,
nested JSON, wrong methods. Every answer must be the JSON envelope {status, msg, results} valid
against the OpenAPI schemas, never "000" for an invalid input, never an HTTP 5xx for a client's
mistake, and never a hang. Afterwards the server runs with the same worker processes (none died) and
still reads a page right.

Problems are collected over the whole run rather than stopping at the first, so one run lists every
distinct bug with an example request. ``FUZZ_SEED=<n>`` replays a run; ``FUZZ_EXAMPLES`` changes
its size.

Extreme strips go to every module: ``ocr_rec`` and ``ocr_cls`` must refuse a line wider than
``OCR_MAX_LINE_RATIO`` (100) times its height (the recognizer scales a line to 48 pixels high, so a
1×3000 strip used to cost 26 s of CPU and 2 GB), and take the rest.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import cv2
import numpy as np
import requests
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import ROOT, b64, normalized

SPEC = json.loads((ROOT / "ocrhub" / "web" / "openapi.json").read_text())
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1200"))
SEED = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
TIMEOUT = 30  # seconds: an answer slower than this counts as a hang
BODY_LIMIT = 4 * 1024 * 1024  # the session server's OCR_MAX_BODY_BYTES (tests/conftest.py)
IMAGE_LIMIT = 8  # the session server's OCR_MAX_IMAGES


# ------------------------------------------------------------------------------------ the OpenAPI file


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        node = SPEC
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def violations(value, schema: dict, where: str = "$") -> list[str]:
    """What in ``value`` breaks ``schema`` (the JSON Schema keywords openapi.json uses)."""
    schema = resolve(schema)
    if "anyOf" in schema:
        if any(not violations(value, option, where) for option in schema["anyOf"]):
            return []
        return [f"{where}: matches none of {[o.get('$ref', o) for o in schema['anyOf']]}"]
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    }
    if kind and not checks[kind](value):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        found.append(f"{where}: shorter than {schema['minLength']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            found.append(f"{where}: {value} out of range")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            found.append(f"{where}: {len(value)} items")
        for index, item in enumerate(value):
            found += violations(item, schema.get("items", {}), f"{where}[{index}]")
    if isinstance(value, dict):
        found += [f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                found += violations(value[key], sub, f"{where}.{key}")
    return found


PREDICT_PATH = next(path for path in SPEC["paths"] if "{module}" in path)
PREDICT = SPEC["paths"][PREDICT_PATH]["post"]
MODULES = next(p for p in PREDICT["parameters"] if p["name"] == "module")["schema"]["enum"]
REQUEST_SCHEMA = resolve(PREDICT["requestBody"]["content"]["application/json"]["schema"])
IMAGES_KEY = REQUEST_SCHEMA["required"][0]
MIN_IMAGES = REQUEST_SCHEMA["properties"][IMAGES_KEY]["minItems"]
SUCCESS_SCHEMA = PREDICT["responses"]["200"]["content"]["application/json"]["schema"]
ERROR_SCHEMA = SPEC["components"]["schemas"]["ErrorEnvelope"]
RESULTS_BY_MODULE = PREDICT["x-results-by-module"]
PREDICT_CODES = {int(code) for code in PREDICT["responses"]}
DOCUMENTED = {path: {method.upper() for method in item} for path, item in SPEC["paths"].items()}
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


# ----------------------------------------------------------------------------------- requests to send


@dataclass
class Case:
    kind: str
    method: str = "POST"
    path: str = ""
    body: bytes | None = None
    headers: dict = field(default_factory=dict)
    chunked: bool = False
    expect: str = "invalid"  # "invalid": must not be "000"; "valid": must be "000"; "any": no claim
    module: str = ""

    def describe(self) -> str:
        body = b"" if self.body is None else self.body
        shown = body[:160] + (b"...(%d bytes)" % len(body) if len(body) > 160 else b"")
        return f"{self.method} {self.path[:120]} headers={self.headers} {'chunked ' if self.chunked else ''}body={shown!r}"


def predict_path(module: str) -> str:
    return PREDICT_PATH.replace("{module}", module)


def encode_path_segment(name: str) -> str:
    """Percent-encoded, dots too, so no client or proxy folds "." or ".." away."""
    return quote(name, safe="").replace(".", "%2E")


def json_case(kind: str, value, module: str, expect: str = "invalid", path_suffix: str = "", **kwargs) -> Case:
    body = json.dumps(value, allow_nan=True).encode()
    headers = kwargs.pop("headers", {"Content-Type": "application/json"})
    return Case(
        kind,
        path=predict_path(module) + path_suffix,
        body=body,
        headers=headers,
        expect=expect,
        module=module,
        **kwargs,
    )


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["", "images", "data:image/png;base64,", "AAAA", "iVBORw0KGgo="])
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8) | st.just(IMAGES_KEY), children, max_size=4)
    ),
    max_leaves=25,
)
modules = st.sampled_from(MODULES)


def is_valid_images(value) -> bool:
    return isinstance(value, list) and len(value) >= MIN_IMAGES and all(isinstance(i, str) for i in value)


def cases(good: dict[str, list[str]]) -> st.SearchStrategy[Case]:
    """Every kind of bad or odd request; ``good`` holds base64 images per format that decode."""
    good_b64 = st.sampled_from(good["png"] + good["jpg"])
    any_format = st.sampled_from(sorted(good)).flatmap(lambda fmt: st.sampled_from(good[fmt]))

    random_body = st.builds(lambda v, m: json_case("random JSON body", v, m), json_values, modules)

    wrong_images = st.builds(
        lambda v, m: json_case("wrong type for images", {IMAGES_KEY: v}, m),
        json_values.filter(lambda v: not is_valid_images(v))
        | st.just([])
        | st.just(None)
        | st.lists(
            st.integers() | st.floats() | st.none() | st.booleans() | st.lists(st.text(max_size=4)),
            min_size=1,
            max_size=IMAGE_LIMIT,
        ),
        modules,
    )
    missing_images = st.builds(
        lambda extra, m: json_case("missing images", extra, m),
        st.dictionaries(st.text(max_size=10).filter(lambda k: k != IMAGES_KEY), json_values, max_size=4)
        | st.fixed_dictionaries({"paths": st.lists(st.text(max_size=20), max_size=2)}),
        modules,
    )
    too_many = st.builds(
        lambda items, m: json_case("too many images", {IMAGES_KEY: items}, m),
        st.sampled_from([IMAGE_LIMIT + 1, IMAGE_LIMIT + 2, 64]).flatmap(lambda n: st.lists(good_b64, min_size=n, max_size=n)),
        modules,
    )

    random_strings = st.builds(
        lambda items, m: json_case("random strings as base64", {IMAGES_KEY: items}, m),
        st.lists(st.text(max_size=60), min_size=1, max_size=3),
        modules,
    )
    random_bytes = st.builds(
        lambda items, m: json_case("random bytes as base64", {IMAGES_KEY: [base64.b64encode(b).decode() for b in items]}, m),
        st.lists(st.binary(max_size=600), min_size=1, max_size=3),
        modules,
    )
    magic = st.sampled_from(
        [
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff\xe0",
            b"BM",
            b"GIF89a",
            b"II*\x00",
            b"MM\x00*",
            b"RIFF\x00\x00\x00\x00WEBPVP8 ",
            b"\x00\x00\x01\x00",
            b"%PDF-1.4",
            b"<svg",
        ]
    )
    magic_bytes = st.builds(
        lambda head, tail, m: json_case(
            "magic number + random bytes", {IMAGES_KEY: [base64.b64encode(head + tail).decode()]}, m, expect="any"
        ),
        magic,
        st.binary(max_size=400),
        modules,
    )
    bad_among_good = st.builds(
        lambda goods, bad, at, m: json_case("a bad image among good ones", {IMAGES_KEY: goods[:at] + [bad] + goods[at:]}, m),
        st.lists(good_b64, min_size=1, max_size=3),
        st.text(max_size=20) | st.sampled_from(["AAAA", "====", "%%%"]),
        st.integers(0, 3),
        modules,
    )

    def mutate(data: bytes, rng: random.Random, how: str) -> bytes:
        raw = bytearray(data)
        if how == "truncate":
            return bytes(raw[: rng.randrange(1, len(raw))])
        if how == "flip":
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            return bytes(raw)
        if how == "insert":
            at = rng.randrange(len(raw))
            return bytes(raw[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + raw[at:])
        at = rng.randrange(len(raw))  # "header": damage the first 64 bytes, where sizes live
        raw[min(at, 63)] = rng.randrange(256)
        return bytes(raw)

    # damaged real images may still decode: no claim on the status, only on the envelope and the code
    damaged = st.builds(
        lambda item, how, r, m: json_case(
            f"damaged image ({how})",
            {IMAGES_KEY: [base64.b64encode(mutate(base64.b64decode(item), random.Random(r), how)).decode()]},
            m,
            expect="any",
        ),
        any_format,
        st.sampled_from(["truncate", "flip", "insert", "header"]),
        st.integers(0, 2**32),
        modules,
    )

    content_types = st.sampled_from(
        [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/octet-stream",
            "image/png",
            "application/xml",
            "",
            "application/json; charset=latin-1",
            "application/problem+json",
            "application/jsonx",
            "json",
            "*/*",
            "application/json;;;",
        ]
    ) | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
    odd_content_type = st.builds(
        lambda ctype, valid, item, m: json_case(
            "random content type",
            {IMAGES_KEY: [item] if valid else item},
            m,
            expect="any" if valid else "invalid",
            headers={"Content-Type": ctype} if ctype else {},
        ),
        content_types,
        st.booleans(),
        good_b64,
        modules,
    )

    non_json = st.builds(
        lambda body, m, ctype: Case("non-JSON body", path=predict_path(m), body=body, module=m, headers={"Content-Type": ctype}),
        st.binary(max_size=300).filter(lambda b: not _parses_as_json(b))
        | st.text(max_size=100).map(str.encode).filter(lambda b: not _parses_as_json(b))
        | good_b64.map(lambda item: json.dumps({IMAGES_KEY: [item]}).encode()[:-1])  # cut short
        | good_b64.map(lambda item: f"images={item}".encode())
        | st.just(b""),
        modules,
        st.sampled_from(["application/json", "application/json; charset=utf-8"]),
    )
    multipart = st.builds(lambda item, m: _multipart_case(base64.b64decode(item), m), good_b64, modules)

    module_names = st.text(min_size=0, max_size=60) | st.sampled_from(MODULES).flatmap(
        lambda name: st.sampled_from(
            [
                name.upper(),
                name + " ",
                " " + name,
                name + "/",
                name + ".json",
                name + "\x00",
                name + "?",
                name.replace("_", "-"),
                name[:-1],
                name + name,
                "../" + name,
                "..",
                ".",
            ]
        )
    )
    unknown_module = st.builds(
        lambda name, item: Case(
            "random module name",
            path=predict_path(encode_path_segment(name)),
            body=json.dumps({IMAGES_KEY: [item]}).encode(),
            headers={"Content-Type": "application/json"},
        ),
        module_names.filter(lambda n: n not in MODULES),
        good_b64,
    )

    def huge_case(size: int, filler: str, where: str, module: str, chunked: bool) -> Case:
        big = filler * max(1, size // (len(json.dumps(filler)) - 2))  # about ``size`` bytes once in JSON
        value = {IMAGES_KEY: [big]} if where == "item" else {IMAGES_KEY: ["%%%"], "padding": big}
        return json_case(f"huge string ({where}{', chunked' if chunked else ''})", value, module, chunked=chunked)

    huge = st.builds(
        huge_case,
        st.integers(100_000, BODY_LIMIT - 100) | st.integers(BODY_LIMIT - 100, BODY_LIMIT + 100_000),
        st.sampled_from(["A", "AAAA", "/+9=", "x", "é", "\\n", " ", "data:"]),
        st.sampled_from(["item", "key"]),
        modules,
        st.booleans(),
    )

    data_url_ok = st.sampled_from(
        [
            "data:image/png;base64,",
            "data:image/jpeg;base64,",
            "data:;base64,",
            "DATA:IMAGE/PNG;BASE64,",
            "data:image/webp;name=a.webp;base64,",
        ]
    )
    data_url_odd = st.sampled_from(
        [
            "data:image/png,",
            "data:image/png;base64",
            "data:text/plain;base64,",
            "data:image/png;base64,data:image/png;base64,",
            "data:",
            "data:,",
            "data:image/png;charset=utf-8;base64,",
            " data:image/png;base64,",
            "data:image/png;base64;base64,",
            "data:image/svg+xml;base64,",
        ]
    )
    data_urls = (
        st.builds(
            lambda prefix, item, m: json_case("data URL", {IMAGES_KEY: [prefix + item]}, m, expect="valid"),
            data_url_ok,
            good_b64,
            modules,
        )
        | st.builds(
            lambda prefix, item, m: json_case("odd data URL", {IMAGES_KEY: [prefix + item]}, m, expect="any"),
            data_url_odd,
            good_b64,
            modules,
        )
        | st.builds(
            lambda prefix, junk, m: json_case("data URL of junk", {IMAGES_KEY: [prefix + junk]}, m),
            data_url_ok | data_url_odd,
            st.text(max_size=40),
            modules,
        )
    )

    def nest(depth: int, how: str):
        if how == "list":
            return "[" * depth + "]" * depth
        if how == "object":
            return '{"a":' * depth + "1" + "}" * depth
        return '[{"images":' * depth + "null" + "}]" * depth

    nested = st.builds(
        lambda depth, how, whole, m: Case(
            "nested JSON" + (" (deep)" if depth > 100 else ""),
            path=predict_path(m),
            body=(nest(depth, how) if whole else f'{{"{IMAGES_KEY}": {nest(depth, how)}}}').encode(),
            headers={"Content-Type": "application/json"},
            module=m,
        ),
        st.integers(1, 60) | st.integers(100, 50_000),
        st.sampled_from(["list", "object", "mixed"]),
        st.booleans(),
        modules,
    )

    wrong_method = st.builds(
        lambda path_method, m: Case(
            "wrong method",
            method=path_method[1],
            path=path_method[0].replace("{module}", m),
            body=None if path_method[1] == "GET" else b'{"images": []}',
            headers={"Content-Type": "application/json"},
        ),
        st.sampled_from(sorted(DOCUMENTED)).flatmap(
            lambda p: st.tuples(st.just(p), st.sampled_from([m for m in METHODS if m not in DOCUMENTED[p]]))
        ),
        modules,
    )

    segment = st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=20)
    random_path = st.builds(
        lambda prefix, parts, method: Case(
            "undocumented path",
            method=method,
            path=prefix + "/".join(encode_path_segment(p) for p in parts),
            body=None if method == "GET" else b"{}",
            headers={"Content-Type": "application/json"},
        ),
        st.sampled_from(["/", "/predict/ocr_system/", "/gradio/", "/static/", "/api/", "/health/", "/v1/"]),
        st.lists(segment, min_size=1, max_size=3),
        st.sampled_from(["GET", "POST"]),
    )

    def strip(height: int, width: int, ext: str, module: str) -> Case:
        image = np.full((height, width, 3), 255, np.uint8)
        image[:, ::7] = 0
        too_long_a_line = module in ("ocr_rec", "ocr_cls") and width > 100 * height
        return json_case(
            "extreme image size",
            {IMAGES_KEY: [b64(image, ext)]},
            module,
            expect="invalid" if too_long_a_line else "valid",
        )

    extreme = st.builds(strip, st.integers(1, 3), st.integers(1, 2000), st.sampled_from([".png", ".jpg"]), modules) | st.builds(
        strip, st.integers(1, 2000), st.integers(1, 3), st.sampled_from([".png", ".jpg"]), modules
    )

    query = st.builds(
        lambda q, item, m: json_case("random query string", {IMAGES_KEY: [item]}, m, expect="valid", path_suffix="?" + q),
        st.text(max_size=40).map(lambda s: quote(s, safe="=&")),
        good_b64,
        modules,
    )

    odd_valid = (
        st.builds(
            lambda item, extra, m: json_case("extra keys", {IMAGES_KEY: [item], **extra}, m, expect="valid"),
            good_b64,
            st.dictionaries(st.text(max_size=8).filter(lambda k: k != IMAGES_KEY), json_values, max_size=3)
            | st.just({"paths": ["/etc/passwd"]}),
            modules,
        )
        | st.builds(
            lambda item, every, m: json_case(
                "whitespace in base64",
                {IMAGES_KEY: ["\n".join(item[i : i + every] for i in range(0, len(item), every))]},
                m,
                expect="valid",
            ),
            good_b64,
            st.integers(4, 200),
            modules,
        )
        | st.builds(
            lambda items, m: json_case("several formats", {IMAGES_KEY: items}, m, expect="valid"),
            st.lists(any_format.filter(lambda i: not i.startswith("R0lG")), min_size=1, max_size=3),
            modules,
        )
    )

    return st.one_of(
        random_body,
        wrong_images,
        missing_images,
        too_many,
        random_strings,
        random_bytes,
        magic_bytes,
        bad_among_good,
        damaged,
        damaged,
        extreme,
        odd_content_type,
        non_json,
        multipart,
        unknown_module,
        huge,
        data_urls,
        nested,
        wrong_method,
        random_path,
        query,
        odd_valid,
    )


def _parses_as_json(data: bytes) -> bool:
    try:
        json.loads(data)
        return True
    except (ValueError, RecursionError):
        return False


def _multipart_case(image: bytes, module: str) -> Case:
    prepared = requests.Request("POST", "http://x/", files={"images": ("page.png", image, "image/png")}).prepare()
    return Case(
        "multipart upload",
        path=predict_path(module),
        body=prepared.body,
        headers={"Content-Type": prepared.headers["Content-Type"]},
        module=module,
    )


# --------------------------------------------------------------------------------------------- checks


def check(case: Case, response: requests.Response) -> list[str]:
    """Every way the answer breaks the contract; empty when it keeps it."""
    code = response.status_code
    if case.method == "HEAD":
        return []
    content_type = response.headers.get("Content-Type", "")
    if not content_type.startswith("application/json"):
        return [f"HTTP {code} answered {content_type or 'no content type'}, not the JSON envelope: {response.text[:120]!r}"]
    try:
        body = response.json()
    except ValueError:
        return [f"HTTP {code} answered invalid JSON: {response.text[:120]!r}"]
    if not isinstance(body, dict) or set(body) != {"status", "msg", "results"}:
        return [f"HTTP {code} answered JSON without the envelope keys: {str(body)[:120]}"]
    status, problems = body["status"], []
    if status == "000":
        schema = RESULTS_BY_MODULE.get(case.module, SUCCESS_SCHEMA) if case.module else SUCCESS_SCHEMA
        problems += [
            f"success answer breaks the schema: {v}"
            for v in violations(body["results"] if case.module in RESULTS_BY_MODULE else body, schema)[:3]
        ]
        if code != 200:
            problems.append(f"status 000 with HTTP {code}")
    else:
        problems += [f"error answer breaks the schema: {v}" for v in violations(body, ERROR_SCHEMA)[:3]]
        if code < 400:
            problems.append(f"error status {status} with HTTP {code}")
    if code >= 500:
        problems.append(f"HTTP {code} (a server error) for a client's request: {body['msg'][:100]!r}")
    elif case.path.startswith("/predict/") and case.kind != "wrong method" and code not in PREDICT_CODES:
        problems.append(f"HTTP {code} is not documented for {PREDICT_PATH}")
    if case.expect == "invalid" and status == "000":
        problems.append("an invalid request was answered 000")
    if case.expect == "valid" and status != "000":
        problems.append(f"a valid request was refused: HTTP {code} {status} {body['msg'][:100]!r}")
    return problems


def good_images(lines) -> dict[str, list[str]]:
    """Small decodable images in several formats (cheap to OCR): a rendered line and a blank tile."""
    images = {"png": [], "jpg": [], "bmp": [], "webp": [], "tiff": [], "gif": []}
    for image in (lines[0].image, np.full((24, 40, 3), 255, np.uint8)):
        for ext in ("png", "jpg", "bmp", "webp", "tiff"):
            images[ext].append(b64(image, "." + ext))
        buffer = io.BytesIO()
        Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).save(buffer, "GIF")  # not decodable by OpenCV
        images["gif"].append(base64.b64encode(buffer.getvalue()).decode())
    return images


# ----------------------------------------------------------------------------------------------- test


def test_fuzz_the_api_from_its_openapi_description(server, pages, lines):
    workers_before = server.workers()
    assert len(workers_before) == 3  # 2 shared workers and the solo one
    problems: dict[tuple[str, str], list] = {}  # (kind, problem) -> [count, first example]
    kinds: dict[str, int] = {}
    codes: dict[int, int] = {}
    seconds: dict[str, float] = {}  # time spent answering, per kind
    sent = 0
    started = time.monotonic()
    session = requests.Session()

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )
    @given(case=cases(good_images(lines)))
    def fuzz(case: Case):
        nonlocal sent
        began = time.monotonic()
        body, data = case.body, case.body
        if case.chunked and data is not None:
            body = (data[i : i + 65536] for i in range(0, len(data), 65536))
        try:
            response = session.request(
                case.method,
                server.url + case.path,
                data=body,
                headers=case.headers,
                timeout=TIMEOUT,
                allow_redirects=False,
            )
            found = check(case, response)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
        except requests.Timeout:
            found = [f"no answer within {TIMEOUT} s (a hang)"]
        except requests.ConnectionError as err:
            found = [f"connection failed: {type(err).__name__}: {str(err)[:100]}"]
        sent += 1
        kinds[case.kind] = kinds.get(case.kind, 0) + 1
        seconds[case.kind] = seconds.get(case.kind, 0) + time.monotonic() - began
        for problem in found:
            key = (case.kind, re.sub(r"\d{3,}", "N", problem))
            problems.setdefault(key, [0, f"{problem}\n      request: {case.describe()}"])[0] += 1

    fuzz()
    elapsed = time.monotonic() - started
    summary = (
        f"{sent} requests in {elapsed:.0f} s (FUZZ_SEED={SEED}); HTTP codes {dict(sorted(codes.items()))}; "
        f"kinds {dict(sorted(kinds.items()))}"
    )
    print(summary)
    print(
        "slowest kinds:",
        ", ".join(f"{kind} {spent:.1f} s" for kind, spent in sorted(seconds.items(), key=lambda kv: -kv[1])[:5]),
    )

    assert server.process.poll() is None, f"the server exited during the fuzz run: {summary}\n{server.log()[-3000:]}"
    workers_after = server.workers()
    assert workers_after == workers_before, (
        f"a worker died during the fuzz run (workers {workers_before} -> {workers_after}); "
        f"see the server log: {server.log()[-3000:]}"
    )
    sample = pages["english"]
    answer = requests.post(server.url + predict_path("ocr_system"), json={IMAGES_KEY: [b64(sample.image)]}, timeout=120).json()
    assert answer["status"] == "000" and not violations(answer, SUCCESS_SCHEMA), answer
    assert [normalized(line["text"]) for line in answer["results"][0]] == [normalized(t) for t in sample.texts]
    assert sent >= 1000, summary
    report = "\n".join(f"  [{kind}] x{count}: {example}" for (kind, _), (count, example) in sorted(problems.items()))
    assert not problems, f"the API broke its contract in {len(problems)} ways ({summary}):\n{report}"
