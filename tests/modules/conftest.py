import pytest


@pytest.fixture(autouse=True)
def _module_files_apart(isolated_files):
    """Registry tests each get their own media, upload and work folders."""
    return isolated_files
