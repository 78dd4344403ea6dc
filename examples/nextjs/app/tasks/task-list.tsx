"use client";

import { ApiError, nextCursor, totalCount, unwrap, type ListQuery, type Task } from "@taskapi/client";
import Link from "next/link";
import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";

import { SignedOutError } from "@/lib/token";

import { useTaskApi } from "../task-api-provider";

type Status = NonNullable<ListQuery["status"]>;

/** What the page says when something failed. */
function describe(error: unknown): string {
  if (error instanceof ApiError) return error.message; // the API's `detail`, written for users
  if (error instanceof TypeError) return `The Task API could not be reached (${error.message})`;
  return error instanceof Error ? error.message : String(error);
}

/** The signed-in user's tasks, from the browser: filter, search, pages, and every change. */
export function TaskList({ pageSize }: { pageSize: number }) {
  const { api } = useTaskApi();
  const [status, setStatus] = useState<Status>("all");
  const [typed, setTyped] = useState("");
  const [search, setSearch] = useState("");
  const [tasks, setTasks] = useState<Task[]>([]);
  const [total, setTotal] = useState(0);
  const [cursor, setCursor] = useState<string | null>(null);
  const [editing, setEditing] = useState<number | null>(null);
  const [error, setError] = useState("");
  const [signedOut, setSignedOut] = useState(false);
  const [busy, setBusy] = useState(true);
  // Counts finished loads and actions, so that a test can wait for the page to settle.
  const [version, setVersion] = useState(0);
  const latest = useRef(0);

  // Search as the user types, once they pause.
  useEffect(() => {
    const timer = setTimeout(() => setSearch(typed.trim()), 300);
    return () => clearTimeout(timer);
  }, [typed]);

  // #region doc:list
  // The first page (after === null, replacing the list) or the page after a cursor.
  const load = useCallback(
    async (after: string | null) => {
      const request = ++latest.current;
      // search: a case-insensitive match in the title or description (GET /api/tasks?search=)
      const query = { status, limit: pageSize, cursor: after ?? undefined, search: search || undefined };
      const result = await api.GET("/api/tasks", { params: { query } });
      const page = unwrap(result);
      if (request !== latest.current) return; // a newer load started meanwhile: it wins
      setTasks((shown) => (after === null ? page : [...shown, ...page]));
      setTotal(totalCount(result.response));
      setCursor(nextCursor(result.response));
    },
    [api, status, pageSize, search],
  );
  // #endregion doc:list

  // An action, then the first page again: the list shows what the API stored.
  const run = useCallback(
    async (action: () => Promise<unknown>) => {
      setBusy(true);
      setError("");
      try {
        await action();
        setSignedOut(false);
      } catch (failure) {
        if (failure instanceof SignedOutError) setSignedOut(true);
        else setError(describe(failure));
      } finally {
        setBusy(false);
        setVersion((n) => n + 1);
      }
    },
    [],
  );

  useEffect(() => {
    void run(() => load(null));
  }, [run, load]);

  const create = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = event.currentTarget;
    const fields = new FormData(form);
    void run(async () => {
      const description = String(fields.get("description"));
      unwrap(
        await api.POST("/api/tasks", {
          body: { title: String(fields.get("title")), description: description || null },
        }),
      );
      form.reset();
      await load(null);
    });
  };

  const toggle = (task: Task) =>
    run(async () => {
      const path = { task_id: task.id };
      // The state to set, not "toggle": repeating it (a retry) changes nothing more.
      const body = { completed: !task.completed };
      unwrap(await api.PATCH("/api/tasks/{task_id}/complete", { params: { path }, body }));
      await load(null);
    });

  const save = (task: Task, event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const fields = new FormData(event.currentTarget);
    void run(async () => {
      const description = String(fields.get("description"));
      const body = { title: String(fields.get("title")), description: description || null };
      unwrap(await api.PATCH("/api/tasks/{task_id}", { params: { path: { task_id: task.id } }, body }));
      setEditing(null);
      await load(null);
    });
  };

  const remove = (task: Task) =>
    run(async () => {
      unwrap(await api.DELETE("/api/tasks/{task_id}", { params: { path: { task_id: task.id } } }));
      await load(null);
    });

  if (signedOut) {
    return (
      <p id="signed-out" data-version={version}>
        You are signed out. <Link href="/sign-in">Sign in</Link> to see your tasks.
      </p>
    );
  }

  return (
    <div id="task-list" data-busy={busy} data-version={version}>
      <form id="new-task" onSubmit={create}>
        <input name="title" placeholder="What needs doing?" aria-label="Title" />
        <input name="description" placeholder="Details (optional)" aria-label="Description" />
        <button type="submit">Add</button>
      </form>

      <form id="filters" onSubmit={(event) => event.preventDefault()}>
        <select
          id="status"
          aria-label="Show"
          value={status}
          onChange={(event) => setStatus(event.target.value as Status)}
        >
          <option value="all">All</option>
          <option value="pending">Pending</option>
          <option value="completed">Completed</option>
        </select>
        <input
          id="search"
          type="search"
          placeholder="Search titles and details"
          aria-label="Search"
          value={typed}
          onChange={(event) => setTyped(event.target.value)}
        />
      </form>

      <p id="error" role="alert">
        {error}
      </p>
      <p id="count">
        {tasks.length} of {total}
      </p>
      <ul id="tasks">
        {tasks.map((task) => (
          <li key={task.id} className="task" data-id={task.id} data-completed={task.completed}>
            {editing === task.id ? (
              <form className="edit-form" onSubmit={(event) => save(task, event)}>
                <input name="title" defaultValue={task.title} aria-label="Title" />
                <input name="description" defaultValue={task.description ?? ""} aria-label="Description" />
                <button type="submit" className="save">
                  Save
                </button>
                <button type="button" className="cancel" onClick={() => setEditing(null)}>
                  Cancel
                </button>
              </form>
            ) : (
              <>
                <input
                  type="checkbox"
                  className="toggle"
                  aria-label={`Done: ${task.title}`}
                  checked={task.completed}
                  onChange={() => void toggle(task)}
                />
                <span className="title">{task.title}</span>
                {task.description && <span className="description">{task.description}</span>}
                <button type="button" className="edit" onClick={() => setEditing(task.id)}>
                  Edit
                </button>
                <button type="button" className="delete" onClick={() => void remove(task)}>
                  Delete
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
      {cursor !== null && (
        <button id="more" type="button" onClick={() => void run(() => load(cursor))}>
          More
        </button>
      )}
    </div>
  );
}
