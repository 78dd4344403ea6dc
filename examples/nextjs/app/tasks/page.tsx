import { TaskList } from "./task-list";

// ?limit=N sets the page size (1 to 1000, as the API allows); the list pages through Link.
export default async function Tasks({ searchParams }: { searchParams: Promise<{ limit?: string }> }) {
  const { limit } = await searchParams;
  const pageSize = Math.min(Math.max(Number(limit) || 20, 1), 1000);
  return (
    <section>
      <h1>Tasks</h1>
      <TaskList pageSize={pageSize} />
    </section>
  );
}
