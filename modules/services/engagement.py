"""Likes and download counts."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from modules.models import BaseModel, Like, Module


def module_like(*, module: Module, user: AbstractBaseUser) -> bool:
    """Like a module; returns False if the user already did."""
    with transaction.atomic():
        _, created = Like.objects.get_or_create(user=user, module=module)
        if created:
            Module.objects.filter(pk=module.pk).update(like_count=F("like_count") + 1)
    return created


def module_unlike(*, module: Module, user: AbstractBaseUser) -> bool:
    """Take a like back; returns False if there was none."""
    with transaction.atomic():
        deleted, _ = Like.objects.filter(user=user, module=module).delete()
        if deleted:
            Module.objects.filter(pk=module.pk).update(like_count=F("like_count") - 1)
    return bool(deleted)


def module_record_download(*, module: Module) -> None:
    # update() leaves updated_at alone: a download does not change the module.
    Module.objects.filter(pk=module.pk).update(download_count=F("download_count") + 1)


def base_model_record_download(*, base_model: BaseModel) -> None:
    BaseModel.objects.filter(pk=base_model.pk).update(download_count=F("download_count") + 1)
