"""The page, its assets and the API docs (musicsearch/server/pages.py)."""

import re

import pytest


def test_page_and_assets_are_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="/app.js"' in page.text and "http" not in page.text.split("<body>")[1].replace("http://", "")
    for asset in ("/app.js", "/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and "//cdn" not in r.text and "https://" not in r.text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_outside(client, page):
    r = client.get(page)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert not re.search(r"https?:|//[a-z]", r.text, re.I), r.text  # no absolute or protocol-relative URL
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(ref.startswith("/docs-assets/") for ref in refs), refs
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 1000, ref
    if page == "/docs":
        assert {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"} <= set(refs)
        assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text
        assert '"validatorUrl": null' in r.text  # Swagger UI would otherwise call an online validator


def test_docs_assets_cannot_reach_other_files(client):
    for url in ("/docs-assets/../server.py", "/docs-assets/%2e%2e/core.py", "/docs-assets/..%2f..%2fetc%2fpasswd"):
        r = client.get(url)
        assert r.status_code == 404 and b"import" not in r.content and b"root:" not in r.content


def test_redoc_is_served_without_its_cdn_logo(client):
    """ReDoc's bundle would fetch its footer's logo from cdn.redoc.ly: the copy served points
    it at the local favicon."""
    script = client.get("/docs-assets/redoc.standalone.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "cdn.redoc.ly" not in script.text and 'src:"/docs-assets/favicon.png"' in script.text
    assert client.get("/docs-assets/favicon.png").status_code == 200


@pytest.mark.parametrize("page", ["/", "/app.js", "/style.css", "/docs", "/redoc"])
def test_every_page_lets_the_browser_load_from_the_server_only(client, page):
    policy = dict(part.strip().split(" ", 1) for part in client.get(page).headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert not re.search(r"https?:|\*", " ".join(policy.values()))  # no other origin, no wildcard


def test_the_page_names_no_other_machine(client):
    """The only absolute URL in the page's files is SVG's namespace, which is never fetched."""
    for asset in ("/", "/app.js", "/style.css"):
        urls = set(re.findall(r"\bhttps?://[^\s\"'`)]+", client.get(asset).text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (asset, urls)
