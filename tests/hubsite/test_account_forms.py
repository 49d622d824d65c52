"""Log-in, sign-up, password reset and the API token as a person meets them:
errors beside their fields, a reset link by mail, a question before a token is replaced."""

import re

import pytest
from django.core import mail
from rest_framework.authtoken.models import Token

PASSPHRASE = "a-long-passphrase-9"


def field_box(html: str, name: str) -> str:
    """The markup of the field named ``name``: its box, from label to errors."""
    start = html.index(f'name="{name}"')
    box_start = html.rindex('<div class="field', 0, start)
    ends = [html.find(mark, start) for mark in ('<div class="field', "<button", "</form>")]
    return html[box_start : min(end for end in ends if end != -1)]


def test_a_log_in_without_a_password_marks_the_field_and_says_why(client, user):
    response = client.post("/accounts/login/", {"username": "ada", "password": ""})

    html = response.content.decode()
    box = field_box(html, "password")
    assert 'aria-invalid="true"' in box
    assert 'aria-describedby="id_password_error"' in box
    assert '<ul class="errorlist" id="id_password_error"><li>Password is required.</li>' in box
    assert 'role="alert">Correct the field marked below.' in html


def test_a_wrong_password_is_said_first_on_the_page(client, user):
    response = client.post("/accounts/login/", {"username": "ada", "password": "nope"})

    html = response.content.decode()
    alert = re.search(r'<ul class="errorlist nonfield" role="alert"><li>(.*?)</li>', html)
    assert alert and "Please enter a correct username and password" in alert[1]


def test_sign_up_errors_sit_beside_their_fields(client, db):
    response = client.post(
        "/accounts/signup/",
        {"username": "", "password1": PASSPHRASE, "password2": "other-pass-99", "email": "x"},
    )

    html = response.content.decode()
    assert "Username is required." in field_box(html, "username")
    assert "Enter a valid email address." in field_box(html, "email")
    assert "didn’t match" in field_box(html, "password2")
    for name in ("username", "email", "password2"):
        assert 'aria-invalid="true"' in field_box(html, name)
    # Help texts are where aria-describedby points.
    assert 'id="id_email_helptext"' in html


def test_sign_up_takes_an_optional_email(client, django_user_model):
    client.post(
        "/accounts/signup/",
        {"username": "grace", "email": "grace@example.org", "password1": PASSPHRASE,
         "password2": PASSPHRASE},
    )  # fmt: skip

    assert django_user_model.objects.get(username="grace").email == "grace@example.org"


def test_a_forgotten_password_is_reset_through_a_mailed_link(client, django_user_model):
    django_user_model.objects.create_user("grace", "grace@example.org", "old-pass-phrase-1")
    assert b"Forgot your password?" in client.get("/accounts/login/").content

    response = client.post("/accounts/password_reset/", {"email": "grace@example.org"})

    assert response.status_code == 302
    assert b"Check your mail" in client.get(response["Location"]).content
    [message] = mail.outbox
    assert message.to == ["grace@example.org"]
    assert message.subject == "Reset your LoraHub Community password"
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", message.body)[1]
    form_page = client.get(link, follow=True)
    assert b"Choose a new password" in form_page.content
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": PASSPHRASE, "new_password2": PASSPHRASE},
        follow=True,
    )
    assert b"Your new password is set." in done.content
    assert django_user_model.objects.get(username="grace").check_password(PASSPHRASE)
    # The link works once.
    assert b"expired or was used already" in client.get(link, follow=True).content


def test_a_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client, db):
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.org"})

    assert response.status_code == 302
    assert mail.outbox == []


def test_replacing_the_api_token_asks_first_and_keeps_it_until_confirmed(client, user):
    client.force_login(user)
    first = Token.objects.create(user=user).key
    assert b"Replace token" in client.get("/accounts/me/").content

    question = client.post("/accounts/me/")

    assert question.status_code == 200
    assert b"Replace your API token?" in question.content
    assert b'name="confirm" value="replace"' in question.content
    assert Token.objects.get(user=user).key == first
    client.post("/accounts/me/", {"confirm": "replace"})
    assert Token.objects.get(user=user).key != first


@pytest.mark.parametrize("path", ["/accounts/password_reset/", "/accounts/password_change/"])
def test_password_pages_are_the_sites_own(client, user, path):
    client.force_login(user)

    html = client.get(path).content.decode()

    assert "LoraHub Community" in html and "Django administration" not in html
