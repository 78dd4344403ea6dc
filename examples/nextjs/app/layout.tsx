import type { Metadata } from "next";
import { headers } from "next/headers";
import Link from "next/link";
import { connection } from "next/server";
import type { ReactNode } from "react";

import { auth } from "@/lib/auth";
import { authMode, taskApiUrl } from "@/lib/config";

import { SignOutButton } from "./sign-out-button";
import { TaskApiProvider } from "./task-api-provider";
import "./globals.css";

export const metadata: Metadata = { title: "Tasks" };

export default async function RootLayout({ children }: { children: ReactNode }) {
  await connection(); // render per request: the configuration is read at run time
  const session = await auth.api.getSession({ headers: await headers() });
  return (
    <html lang="en">
      <body>
        <TaskApiProvider baseUrl={taskApiUrl()} mode={authMode()}>
          <header>
            <nav>
              <Link href="/">Home</Link> <Link href="/tasks">Tasks</Link>
            </nav>
            {session ? (
              <p>
                Signed in as <b id="user">{session.user.email}</b> <SignOutButton />
              </p>
            ) : (
              <p>
                <Link href="/sign-in">Sign in</Link> <Link href="/sign-up">Sign up</Link>
              </p>
            )}
          </header>
          <main>{children}</main>
        </TaskApiProvider>
      </body>
    </html>
  );
}
