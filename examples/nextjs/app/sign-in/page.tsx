import { AuthForm } from "../auth-form";

export default function SignIn() {
  return (
    <section>
      <h1>Sign in</h1>
      <AuthForm kind="sign-in" />
    </section>
  );
}
