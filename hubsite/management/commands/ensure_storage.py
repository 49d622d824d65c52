from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the media bucket (S3 storage) or folder (local storage) if it is missing."

    def handle(self, *args, **options):
        if settings.STORAGE_BACKEND == "s3":
            self._ensure_bucket()
        else:
            settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
            self.stdout.write(f"media folder: {settings.MEDIA_ROOT}")

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        client = default_storage.connection.meta.client
        name = default_storage.bucket_name
        try:
            client.head_bucket(Bucket=name)
            self.stdout.write(f"bucket {name}: exists")
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
                raise
            client.create_bucket(Bucket=name)
            self.stdout.write(self.style.SUCCESS(f"bucket {name}: created"))
        # A multipart upload cut short by a crash is invisible but billed: expire it.
        client.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "abort-incomplete-uploads",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    }
                ]
            },
        )
