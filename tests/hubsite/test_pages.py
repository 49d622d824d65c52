import pytest
from rest_framework.authtoken.models import Token

PASSPHRASE = "a-long-passphrase-9"


def test_home_lists_registered_base_models(client, base_model):
    response = client.get("/")

    assert response.status_code == 200
    assert b"acme/tiny-llama" in response.content


def test_home_without_base_models_says_how_to_add_one(client, db):
    assert b"install_demo" in client.get("/").content


def test_signup_creates_the_account_and_logs_in(client, django_user_model):
    response = client.post(
        "/accounts/signup/",
        {"username": "grace", "password1": PASSPHRASE, "password2": PASSPHRASE},
        follow=True,
    )

    assert django_user_model.objects.filter(username="grace").exists()
    assert response.context["user"].username == "grace"


def test_signup_with_mismatched_passwords_shows_the_error_and_creates_nothing(
    client, django_user_model
):
    response = client.post(
        "/accounts/signup/",
        {"username": "grace", "password1": PASSPHRASE, "password2": "another-one-77"},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["password2"]
    assert not django_user_model.objects.filter(username="grace").exists()


def test_signup_refuses_a_user_name_with_spaces_around_it(client, django_user_model):
    response = client.post(
        "/accounts/signup/",
        {"username": " grace ", "password1": PASSPHRASE, "password2": PASSPHRASE},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["username"] == [
        "Remove the spaces before or after the user name."
    ]
    assert not django_user_model.objects.exists()


def test_login_and_logout(client, user):
    response = client.post(
        "/accounts/login/", {"username": "ada", "password": "s3cret-pass-phrase"}, follow=True
    )
    assert response.context["user"].is_authenticated

    response = client.post("/accounts/logout/", follow=True)
    assert not response.context["user"].is_authenticated


def test_login_with_a_wrong_password_is_refused(client, user):
    response = client.post("/accounts/login/", {"username": "ada", "password": "nope"})

    assert response.status_code == 400
    assert response.context["form"].non_field_errors()


def test_a_refused_password_change_is_a_400_and_changes_nothing(client, user):
    client.force_login(user)

    response = client.post(
        "/accounts/password_change/",
        {"old_password": "wrong", "new_password1": PASSPHRASE, "new_password2": PASSPHRASE},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["old_password"]
    user.refresh_from_db()
    assert user.check_password("s3cret-pass-phrase")


def test_account_page_needs_login(client, db):
    response = client.get("/accounts/me/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_account_page_creates_and_replaces_the_api_token(client, user):
    client.force_login(user)
    client.post("/accounts/me/")
    first = Token.objects.get(user=user).key

    client.post("/accounts/me/", {"confirm": "replace"})

    second = Token.objects.get(user=user).key
    assert second != first
    assert second.encode() in client.get("/accounts/me/").content


def test_admin_login_page_is_served(client, db):
    assert client.get("/admin/login/").status_code == 200


@pytest.mark.parametrize("path", ["/accounts/signup/", "/accounts/login/"])
def test_auth_pages_render(client, db, path):
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("name", ["admin", "compose", "api", "accounts", "healthz"])
def test_signup_refuses_names_the_site_uses(client, django_user_model, name):
    response = client.post(
        "/accounts/signup/", {"username": name, "password1": PASSPHRASE, "password2": PASSPHRASE}
    )

    assert "used by the site itself" in str(response.context["form"].errors["username"])
    assert not django_user_model.objects.filter(username=name).exists()
