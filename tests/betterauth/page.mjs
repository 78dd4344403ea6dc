// The test page: Better Auth's real browser client for the session and the JWT, then the Task
// API (another origin, given as ?api=...) with fetch and Authorization: Bearer.

import { createAuthClient } from "better-auth/client";
import { jwtClient } from "better-auth/client/plugins";

export const authClient = createAuthClient({ plugins: [jwtClient()] });

const API_URL = new URLSearchParams(location.search).get("api");

async function getToken() {
  const { data, error } = await authClient.token(); // GET /api/auth/token (session cookie)
  if (error) throw new Error(error.message || error.statusText);
  return data.token;
}

export async function api(path, init = {}) {
  const response = await fetch(`${API_URL}${path}`, {
    ...init,
    headers: {
      "Content-Type": "application/json",
      Authorization: `Bearer ${await getToken()}`,
      ...init.headers,
    },
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail); // every error has a readable `detail`
  return body;
}

const $ = (selector) => document.querySelector(selector);

function showError(error) {
  $("#error").textContent = error ? `${error.name}: ${error.message}` : "";
}

async function run(action) {
  showError(null);
  try {
    await action();
  } catch (error) {
    showError(error);
  }
}

function taskItem(task) {
  const item = document.createElement("li");
  item.dataset.id = task.id;
  item.className = task.completed ? "done" : "";
  const toggle = Object.assign(document.createElement("input"), {
    type: "checkbox",
    className: "toggle",
    checked: task.completed,
  });
  toggle.onchange = () =>
    run(async () => {
      await api(`/api/tasks/${task.id}/complete`, { method: "PATCH" });
      await refresh();
    });
  const title = Object.assign(document.createElement("span"), { textContent: task.title });
  const edit = Object.assign(document.createElement("input"), {
    className: "edit",
    value: task.title,
  });
  const save = Object.assign(document.createElement("button"), {
    className: "save",
    textContent: "Save",
  });
  save.onclick = () =>
    run(async () => {
      await api(`/api/tasks/${task.id}`, {
        method: "PUT",
        body: JSON.stringify({ title: edit.value }),
      });
      await refresh();
    });
  const remove = Object.assign(document.createElement("button"), {
    className: "delete",
    textContent: "Delete",
  });
  remove.onclick = () =>
    run(async () => {
      await api(`/api/tasks/${task.id}`, { method: "DELETE" });
      await refresh();
    });
  item.append(toggle, title, edit, save, remove);
  return item;
}

async function refresh() {
  const tasks = await api("/api/tasks?sort=created&order=asc");
  $("#tasks").replaceChildren(...tasks.map(taskItem));
  $("#count").textContent = `${tasks.length} tasks`;
}

async function signedIn(result) {
  if (result.error) throw new Error(result.error.message || result.error.statusText);
  const { data } = await authClient.getSession();
  $("#user").textContent = data ? data.user.email : "nobody";
  await refresh();
}

const credentials = () => ({
  name: $("#name").value,
  email: $("#email").value,
  password: $("#password").value,
});
$("#sign-up").onclick = () =>
  run(async () => signedIn(await authClient.signUp.email(credentials())));
$("#sign-in").onclick = () =>
  run(async () => signedIn(await authClient.signIn.email(credentials())));
$("#new-task").onsubmit = (event) => {
  event.preventDefault();
  run(async () => {
    await api("/api/tasks", { method: "POST", body: JSON.stringify({ title: $("#title").value }) });
    $("#title").value = "";
    await refresh();
  });
};

// For the test driver: a request the page's UI does not offer (reading a task by id).
window.taskPage = { api };
document.body.dataset.ready = "true";
