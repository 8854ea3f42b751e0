"""Image transformations through the gateway with the real client:
public, authenticated and signed renditions (width, height, resize modes,
quality, format), WebP for clients that accept it, renditions kept and
served again, and the refusals (not an image, bad options, the feature
switched off)."""

import io
import time
import uuid

import httpx
import pytest
from PIL import Image
from storage3.exceptions import StorageApiError
from supabase import create_client

from conftest import create_project


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "images")


@pytest.fixture(scope="module")
def bucket(project):
    name = f"img-{uuid.uuid4().hex[:8]}"
    storage = create_client(project["url"], project["secret_key"]).storage
    storage.create_bucket(name, options={"public": True})
    picture = Image.new("RGB", (400, 200))
    for x in range(400):
        for y in range(0, 200, 20):
            picture.putpixel((x, y), (x % 256, 120, 200))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    storage.from_(name).upload("pics/wide.png", out.getvalue(), {"content-type": "image/png"})
    storage.from_(name).upload("notes.txt", b"not a picture", {"content-type": "text/plain"})
    return name


def image_of(content):
    return Image.open(io.BytesIO(content))


def test_public_renditions_and_resize_modes(project, bucket):
    files = create_client(project["url"], project["publishable_key"]).storage.from_(bucket)
    url = files.get_public_url("pics/wide.png", {"transform": {"width": 100, "height": 100}})
    assert "/render/image/public/" in url
    cover = httpx.get(url)
    assert cover.status_code == 200, cover.text
    assert cover.headers["content-type"] == "image/png"
    assert image_of(cover.content).size == (100, 100)
    base = f"{project['url']}/storage/v1/render/image/public/{bucket}/pics/wide.png"
    assert image_of(httpx.get(base, params={"width": 100, "height": 100, "resize": "contain"}).content).size == (100, 50)
    assert image_of(httpx.get(base, params={"width": 100, "height": 100, "resize": "fill"}).content).size == (100, 100)
    assert image_of(httpx.get(base, params={"width": 200}).content).size == (200, 100)
    webp = httpx.get(base, params={"width": 50}, headers={"Accept": "image/webp,*/*"})
    assert webp.headers["content-type"] == "image/webp" and image_of(webp.content).format == "WEBP"
    origin = httpx.get(base, params={"width": 50, "format": "origin"}, headers={"Accept": "image/webp"})
    assert origin.headers["content-type"] == "image/png"


def test_renditions_are_kept_and_served_again(platform, project, bucket):
    base = f"{project['url']}/storage/v1/render/image/public/{bucket}/pics/wide.png"
    first = httpx.get(base, params={"width": 123})
    renders = platform.data_dir / "storage" / project["ref"] / "%7Erenders"
    kept = [p for p in renders.rglob("*") if p.is_file()]
    assert kept, "the rendition is stored"
    again = httpx.get(base, params={"width": 123})
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    assert [p for p in renders.rglob("*") if p.is_file()] == kept


def test_authenticated_and_signed_renditions(project, bucket):
    files = create_client(project["url"], project["secret_key"]).storage.from_(bucket)
    small = files.download("pics/wide.png", {"transform": {"width": 40, "quality": 50}})
    assert image_of(small).size == (40, 20)
    signed = files.create_signed_url("pics/wide.png", 60, {"transform": {"width": 80, "height": 80, "resize": "contain"}})
    url = signed["signedURL"]
    assert "/render/image/sign/" in url
    assert image_of(httpx.get(url).content).size == (80, 40)
    # The token fixes the transformation: query parameters do not change it.
    assert image_of(httpx.get(url + "&width=10").content).size == (80, 40)
    forged = httpx.get(url.replace("wide.png", "other.png"))
    assert forged.status_code == 400


def test_refusals(platform, project, bucket):
    base = f"{project['url']}/storage/v1/render/image/public/{bucket}"
    text = httpx.get(f"{base}/notes.txt", params={"width": 10})
    assert text.status_code == 400 and text.json()["statusCode"] == "415"
    assert text.json()["error"] == "invalid_mime_type"
    for bad in [{"width": 0}, {"width": 99999}, {"resize": "crop"}, {"quality": 5}, {"format": "avif"}]:
        r = httpx.get(f"{base}/pics/wide.png", params=bad)
        assert r.status_code == 400 and r.json()["statusCode"] == "400", bad
    assert httpx.get(f"{base}/pics/missing.png", params={"width": 10}).json()["statusCode"] == "404"
    with platform.client() as api:
        api.patch(f"/v1/projects/{project['ref']}/config/storage",
                  json={"features": {"imageTransformation": {"enabled": False}}})
        try:
            time.sleep(0.3)
            off = httpx.get(f"{base}/pics/wide.png", params={"width": 10})
            assert off.status_code == 400 and off.json()["error"] == "FeatureNotEnabled"
            files = create_client(project["url"], project["secret_key"]).storage.from_(bucket)
            with pytest.raises(StorageApiError):
                files.download("pics/wide.png", {"transform": {"width": 40}})
        finally:
            api.patch(f"/v1/projects/{project['ref']}/config/storage",
                      json={"features": {"imageTransformation": {"enabled": True}}})
