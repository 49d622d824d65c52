"""API tokens sent the way Hugging Face Hub clients send them."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """The hub's API token as ``Authorization: Bearer …``.

    ``huggingface_hub`` (and so PEFT and transformers) always use the Bearer
    keyword, so the same token works for the REST API and for clients that
    use the hub as their ``HF_ENDPOINT``.
    """

    keyword = "Bearer"


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Bearer tokens in the OpenAPI schema, apart from the ``Token`` keyword's scheme."""

    target_class = BearerTokenAuthentication
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The API token, sent the way Hugging Face Hub clients send it.",
        }
