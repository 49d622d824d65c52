def test_list_is_public_and_filterable(client, base_model):
    response = client.get("/api/v1/base-models/", {"task_type": "CAUSAL_LM"})

    assert response.status_code == 200
    [item] = response.json()["results"]
    assert item["identifier"] == "acme/tiny-llama"
    assert item["linear_shapes"]["v_proj"] == [[64, 32]]


def test_filter_excludes_other_task_types(client, base_model):
    response = client.get("/api/v1/base-models/", {"task_type": "SEQ_2_SEQ_LM"})

    assert response.json()["count"] == 0


def test_detail_by_identifier_with_a_slash(client, base_model):
    response = client.get("/api/v1/base-models/acme/tiny-llama/")

    assert response.status_code == 200
    assert response.json()["family"] == "llama"


def test_unknown_identifier_is_404(client, db):
    assert client.get("/api/v1/base-models/acme/absent/").status_code == 404


def test_base_models_are_read_only_over_the_api(client, base_model, user):
    # Base models are registered by operators (install_demo, admin), not by users.
    client.force_login(user)
    response = client.post("/api/v1/base-models/", {"identifier": "x/y"})

    assert response.status_code == 405
