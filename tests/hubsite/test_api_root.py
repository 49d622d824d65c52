from urllib.parse import urlsplit

import yaml

SECTIONS = {
    "base_models": "/api/v1/base-models/",
    "modules": "/api/v1/modules/",
    "tags": "/api/v1/tags/",
    "compositions": "/api/v1/compositions/",
    "trainings": "/api/v1/trainings/",
    "playground": "/api/v1/playground/",
    "imports": "/api/v1/imports/",
    "auth_token": "/api/v1/auth/token/",
    "schema": "/api/v1/schema/",
    "docs": "/api/v1/docs/",
    "redoc": "/api/v1/redoc/",
}


def test_api_root_links_every_section_and_each_link_answers(client, user):
    response = client.get("/api/v1/")

    assert response.status_code == 200
    links = {name: urlsplit(url).path for name, url in response.json().items()}
    assert links == SECTIONS
    client.force_login(user)
    for path in links.values():
        # The playground and the token endpoint take POSTs only.
        assert client.get(path).status_code in (200, 405), path


def test_openapi_schema_describes_the_api(client, db):
    response = client.get("/api/v1/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/base-models/" in schema["paths"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_interactive_docs_are_served_without_a_cdn(client, db):
    for path in ("/api/v1/docs/", "/api/v1/redoc/"):
        response = client.get(path)
        assert response.status_code == 200
        assert b"cdn.jsdelivr" not in response.content


def test_token_obtained_with_a_password_authenticates_api_calls(client, user):
    response = client.post(
        "/api/v1/auth/token/", {"username": "ada", "password": "s3cret-pass-phrase"}
    )
    assert response.status_code == 200
    token = response.json()["token"]

    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/base-models/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert api.get("/api/v1/base-models/").status_code == 401


def test_token_with_wrong_credentials_gets_a_field_error(client, user):
    response = client.post("/api/v1/auth/token/", {"username": "ada", "password": "wrong"})

    assert response.status_code == 400
    assert response.json()["non_field_errors"]
