"use client";

import type { TaskApi } from "@taskapi/client";
import { createContext, useContext, useMemo, type ReactNode } from "react";

import { browserTaskApi } from "@/lib/api";
import type { AuthMode } from "@/lib/config";

const TaskApiContext = createContext<{ api: TaskApi; signOut: () => void } | null>(null);

/** The browser's Task API client, configured by the server (see app/layout.tsx). */
export function TaskApiProvider(props: { baseUrl: string; mode: AuthMode; children: ReactNode }) {
  const { baseUrl, mode, children } = props;
  const value = useMemo(() => browserTaskApi(baseUrl, mode), [baseUrl, mode]);
  return <TaskApiContext value={value}>{children}</TaskApiContext>;
}

export function useTaskApi(): { api: TaskApi; signOut: () => void } {
  const value = useContext(TaskApiContext);
  if (value === null) throw new Error("useTaskApi() outside <TaskApiProvider>");
  return value;
}
