import { ApiError, totalCount, unwrap, type Task } from "@taskapi/client";
import { headers } from "next/headers";
import Link from "next/link";

import { auth } from "@/lib/auth";
import { serverTaskApi } from "@/lib/server-api";

// A Server Component calling the Task API from the server, as the signed-in user.
export default async function Home() {
  const session = await auth.api.getSession({ headers: await headers() });
  if (!session) {
    return (
      <section id="home">
        <h1>Tasks</h1>
        <p id="signed-out">
          You are signed out. <Link href="/sign-in">Sign in</Link> or{" "}
          <Link href="/sign-up">create an account</Link>.
        </p>
      </section>
    );
  }
  // #region doc:server-call
  let summary: { total: number; latest: Task[] } | { error: string };
  try {
    const result = await serverTaskApi().GET("/api/tasks", { params: { query: { limit: 3 } } });
    summary = { total: totalCount(result.response), latest: unwrap(result) };
  } catch (error) {
    summary = { error: error instanceof ApiError ? error.message : String(error) };
  }
  // #endregion doc:server-call
  return (
    <section id="home">
      <h1>Tasks of {session.user.name}</h1>
      {"error" in summary ? (
        <p id="server-error" role="alert">
          {summary.error}
        </p>
      ) : (
        <>
          <p id="summary">
            {summary.total} {summary.total === 1 ? "task" : "tasks"}
          </p>
          <ul id="latest">
            {summary.latest.map((task) => (
              <li key={task.id}>{task.completed ? `${task.title} (done)` : task.title}</li>
            ))}
          </ul>
        </>
      )}
      <Link href="/tasks">All tasks</Link>
    </section>
  );
}
