"""Storage settings through the Management API with Supabase's names
(`GET/PATCH /v1/projects/{ref}/config/storage`): defaults, nested
`features` merged by a PATCH, and bad input refused whole with a 400 that
names the field."""


def test_storage_settings_read_merge_and_refuse(platform, supa_project):
    url = f"/v1/projects/{supa_project.ref}/config/storage"
    with platform.client() as api:
        assert api.get(url).json() == {
            "fileSizeLimit": 52428800,
            "features": {"imageTransformation": {"enabled": True}, "s3Protocol": {"enabled": True}},
        }
        changed = api.patch(url, json={"fileSizeLimit": 1_000_000, "features": {"s3Protocol": {"enabled": False}}})
        assert changed.status_code == 200, changed.text
        expected = {"fileSizeLimit": 1_000_000,
                    "features": {"imageTransformation": {"enabled": True}, "s3Protocol": {"enabled": False}}}
        assert changed.json() == expected and api.get(url).json() == expected
        for bad, field in [({"fileSizeLimit": 0}, "fileSizeLimit"), ({"fileSizeLimit": "big"}, "fileSizeLimit"),
                           ({"features": {"webp": {"enabled": True}}}, "webp"), ({"sizeLimit": 1}, "sizeLimit")]:
            refused = api.patch(url, json=bad)
            assert refused.status_code == 400 and field in refused.text, (bad, refused.text)
        assert api.get(url).json() == expected == supa_project.config("storage")
        missing = api.get("/v1/projects/abcdefghijklmnopqrst/config/storage")
        assert missing.status_code == 404
