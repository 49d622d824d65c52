import yaml


def test_api_root_links_every_section(client, db):
    response = client.get("/api/v1/")

    assert response.status_code == 200
    body = response.json()
    assert body["base_models"].endswith("/api/v1/base-models/")
    assert body["schema"].endswith("/api/v1/schema/")


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
