import pytest


@pytest.fixture(autouse=True)
def _module_files_apart(isolated_files):
    """Registry tests each get their own media, upload and work folders."""
    return isolated_files


@pytest.fixture
def live_hub(transactional_db, isolated_files, tmp_path):
    """A hub process on loopback, on the test database and this test's files."""
    from tests.hub_server import running_hub

    with running_hub(media_root=isolated_files, log=tmp_path / "hub.log") as url:
        yield url
