"""The embedded broker: kombu's filesystem transport, a spool folder on disk.

It needs no server, yet web and worker are separate processes exchanging
messages through it, exactly as they do through Redis in production.
"""

from pathlib import Path


def filesystem_broker_options(folder: Path) -> dict:
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        # One machine: producers and consumers share a single spool folder.
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        # Exchange bindings live here, which is what routes a task to its queue.
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
