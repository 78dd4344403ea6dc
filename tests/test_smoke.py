from fastapi.testclient import TestClient


def test_create_and_list_us1_1(client: TestClient, alice: dict[str, str]) -> None:
    created = client.post("/api/tasks", json={"title": "x"}, headers=alice)
    assert created.status_code == 201
    assert client.get("/api/tasks", headers=alice).json()[0]["title"] == "x"
