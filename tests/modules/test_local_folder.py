"""module_local_folder: a loadable folder of links, made again when a link breaks."""

import pytest

from modules.services import module_local_folder

pytestmark = pytest.mark.django_db


def test_the_folder_holds_every_file_under_its_name(module):
    folder = module_local_folder(module)

    assert {p.name for p in folder.iterdir()} == set(
        module.files.values_list("filename", flat=True)
    )
    assert module_local_folder(module) == folder


def test_a_broken_link_is_made_again(module, tmp_path):
    folder = module_local_folder(module)
    link = folder / "adapter_config.json"
    link.unlink()
    link.symlink_to(tmp_path / "gone.json")

    again = module_local_folder(module)

    assert (again / "adapter_config.json").read_bytes().startswith(b"{")
