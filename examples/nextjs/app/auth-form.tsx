"use client";

import { useRouter } from "next/navigation";
import { useState, type FormEvent } from "react";

import { authClient } from "@/lib/auth-client";

/** Email and password, to sign up or sign in with Better Auth; then on to the tasks. */
export function AuthForm({ kind }: { kind: "sign-up" | "sign-in" }) {
  const router = useRouter();
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const onSubmit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const email = String(form.get("email"));
    const password = String(form.get("password"));
    setBusy(true);
    setError("");
    const { error } =
      kind === "sign-up"
        ? await authClient.signUp.email({ name: String(form.get("name")), email, password })
        : await authClient.signIn.email({ email, password });
    setBusy(false);
    if (error) {
      setError(error.message ?? error.statusText);
      return;
    }
    router.push("/tasks");
    router.refresh(); // the layout shows who is signed in
  };

  return (
    <form id={kind} onSubmit={onSubmit}>
      {kind === "sign-up" && <input name="name" placeholder="Name" autoComplete="name" required />}
      <input name="email" type="email" placeholder="Email" autoComplete="email" required />
      <input
        name="password"
        type="password"
        placeholder="Password"
        autoComplete={kind === "sign-up" ? "new-password" : "current-password"}
        minLength={8}
        required
      />
      <button type="submit" disabled={busy}>
        {kind === "sign-up" ? "Sign up" : "Sign in"}
      </button>
      <p id="auth-error" role="alert">
        {error}
      </p>
    </form>
  );
}
