"""Reads of the registry."""

from django.db.models import QuerySet

from modules.models import BaseModel


def base_model_list() -> QuerySet[BaseModel]:
    return BaseModel.objects.all()


def base_model_get(*, identifier: str) -> BaseModel:
    return BaseModel.objects.get(identifier=identifier)
