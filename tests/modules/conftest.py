import pytest


@pytest.fixture(autouse=True)
def isolated_files(settings, tmp_path):
    """Each test gets its own media folder, upload folder and blob cache.

    Blobs are shared by content, so a file left by one test would change what
    the next one sees ("already stored", "nothing left behind").
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "media"},
        },
    }
    settings.FILE_UPLOAD_TEMP_DIR = tmp_path / "uploads"
    settings.FILE_UPLOAD_TEMP_DIR.mkdir()
    settings.VAR_DIR = tmp_path / "var"
    return tmp_path / "media"
