"use client";

import { useRouter } from "next/navigation";

import { authClient } from "@/lib/auth-client";

import { useTaskApi } from "./task-api-provider";

export function SignOutButton() {
  const router = useRouter();
  const { signOut } = useTaskApi();
  const onClick = async () => {
    await authClient.signOut();
    signOut(); // drop the cached JWT: it would stay valid until its exp
    router.push("/sign-in");
    router.refresh();
  };
  return (
    <button id="sign-out" type="button" onClick={onClick}>
      Sign out
    </button>
  );
}
